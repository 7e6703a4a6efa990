//! `embed_b2bua`: one call through a minimal B2BUA leg that anchors its
//! media with Pinhole's engine and a relay of its own; prints what
//! happened and exits non-zero unless media crossed both ways.

fn main() -> anyhow::Result<()> {
    let r = pinhole_embed::run(50)?;
    println!(
        "B2BUA leg on 127.0.0.1: the callee was told to send RTP to {}",
        r.callee_sends_to
    );
    println!(
        "relay legs during the call: {}, after the BYE: {}",
        r.legs_during, r.legs_after_bye
    );
    println!(
        "RTP caller -> callee: {}/{}, callee -> caller: {}/{}, from strangers: {}",
        r.callee_received, r.sent, r.caller_received, r.sent, r.foreign
    );
    println!("engine events: {}", r.events.join(", "));
    let all = usize::from(r.sent);
    if r.caller_received < all || r.callee_received < all || r.legs_after_bye != 0 {
        anyhow::bail!("the call's media did not cross both ways, or legs were left");
    }
    Ok(())
}
