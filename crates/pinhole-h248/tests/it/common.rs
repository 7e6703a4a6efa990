//! Helpers shared by the suites.

use std::fmt::Write as _;

use pinhole_h248::{ContextId, Item, Message};

/// The structure of a message as text, independent of token forms, letter
/// case, white space and line ends: ids, contexts, command kinds and
/// flags, termination ids, stream ids, and the bytes of each SDP group.
pub(crate) fn shape(m: &Message<'_>) -> String {
    let d = m.bytes();
    let mut s = format!("v{} {}\n", m.version(), m.mid().text);
    if let Some(e) = m.error() {
        let _ = writeln!(s, "error {} {:?}", e.code, e.reason);
    }
    for item in m.items() {
        let (kind, actions, error) = match item {
            Item::Request(r) => ("T", &r.actions[..], None),
            Item::Reply(r) => (
                if r.immediate_ack { "P+IA" } else { "P" },
                &r.actions[..],
                r.error.as_ref(),
            ),
            Item::Pending { id, .. } => {
                let _ = writeln!(s, "PN {id}");
                continue;
            }
            Item::ResponseAck { ranges, .. } => {
                let _ = writeln!(s, "K {ranges:?}");
                continue;
            }
        };
        let _ = writeln!(s, "{kind} {:?}", item.id());
        if let Some(e) = error {
            let _ = writeln!(s, " error {} {:?}", e.code, e.reason);
        }
        for a in actions {
            let ctx = match a.context {
                ContextId::Null => "-".to_owned(),
                ContextId::Choose => "$".to_owned(),
                ContextId::All => "*".to_owned(),
                ContextId::Id(n) => n.to_string(),
            };
            let _ = writeln!(s, " C {ctx}");
            if let Some(e) = &a.error {
                let _ = writeln!(s, "  error {} {:?}", e.code, e.reason);
            }
            for c in &a.commands {
                let terms: Vec<&str> = c.terminations.iter().map(|t| t.text).collect();
                let _ = writeln!(
                    s,
                    "  {}{}{} {terms:?}",
                    if c.optional { "O-" } else { "" },
                    if c.wildcard_reply { "W-" } else { "" },
                    c.kind.long_name()
                );
                for st in &c.streams {
                    let _ = writeln!(s, "   stream {:?}", st.id);
                    for (which, groups) in [("L", &st.local), ("R", &st.remote)] {
                        for g in groups {
                            let _ = writeln!(
                                s,
                                "    {which} {:?}",
                                String::from_utf8_lossy(&d[g.span.clone()])
                            );
                        }
                    }
                }
                if let Some(sc) = &c.service_change {
                    let _ = writeln!(
                        s,
                        "   sc {:?} {:?} {:?} {:?} {:?}",
                        sc.method,
                        sc.reason,
                        sc.profile,
                        sc.address.as_ref().map(|a| a.0),
                        sc.mgc_id.as_ref().map(|a| a.0)
                    );
                }
                if let Some(e) = &c.error {
                    let _ = writeln!(s, "   error {} {:?}", e.code, e.reason);
                }
            }
        }
    }
    s
}
