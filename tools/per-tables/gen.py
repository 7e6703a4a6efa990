#!/usr/bin/env python3
"""Generates crates/pinhole-h323/src/per/schema.rs: the aligned-PER skip
tables the walker interprets, from the ITU modules in tests/corpus/asn1.

pycrate (PyPI, 0.8.1) resolves the modules: parameterised H.235 types,
constraints, extension markers. This script keeps only what aligned PER
needs to skip a value, marks the places that matter (transport addresses,
the H.245 PDUs nested in H.225.0 octet strings), and emits only the types
the walker can reach on its way to them. Run it after changing a module:

    pip install pycrate==0.8.1
    python3 tools/per-tables/gen.py > crates/pinhole-h323/src/per/schema.rs
"""
import os
import sys
import tempfile

from pycrate_asn1c.asnproc import compile_text, generate_modules, PycrateGenerator, GLOBAL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASN1 = os.path.join(ROOT, 'tests', 'corpus', 'asn1')
FILES = ['h235/H235-SECURITY-MESSAGES.asn', 'h225/H323-MESSAGES-h2250v6.asn',
         'h245/MULTIMEDIA-SYSTEM-CONTROL-h245v13.asn']

compile_text([open(os.path.join(ASN1, f)).read() for f in FILES])
out = tempfile.mkdtemp()
generate_modules(PycrateGenerator, os.path.join(out, 'h323rt.py'))
sys.path.insert(0, out)
import h323rt as R  # noqa: E402

H225 = R.H323_MESSAGES
H245 = R.MULTIMEDIA_SYSTEM_CONTROL

# Address sequences: (module, CHOICE type, alternative) -> family.
ADDR = {
    ('H323-MESSAGES', 'TransportAddress', 'ipAddress'): 'V4',
    ('H323-MESSAGES', 'TransportAddress', 'ip6Address'): 'V6',
    ('MULTIMEDIA-SYSTEM-CONTROL', 'UnicastAddress', 'iPAddress'): 'V4',
    ('MULTIMEDIA-SYSTEM-CONTROL', 'UnicastAddress', 'iP6Address'): 'V6',
}
# Types whose components are named in reports ("field").
LABELLED = {('H323-MESSAGES', 'TransportAddress'), ('MULTIMEDIA-SYSTEM-CONTROL', 'TransportAddress'),
            ('H323-MESSAGES', 'AliasAddress')}
# Integer and boolean components whose values the ALG reads: (type, field).
VALUES = {('OpenLogicalChannel', 'forwardLogicalChannelNumber'),
          ('OpenLogicalChannelAck', 'forwardLogicalChannelNumber'),
          ('OpenLogicalChannelReject', 'forwardLogicalChannelNumber'),
          ('CloseLogicalChannel', 'forwardLogicalChannelNumber'),
          ('RequestChannelClose', 'forwardLogicalChannelNumber'),
          ('H2250LogicalChannelParameters', 'sessionID'),
          ('H2250LogicalChannelAckParameters', 'sessionID'),
          ('H323-UU-PDU', 'h245Tunneling')}
# Alias strings the ALG routes by: AliasAddress alternatives.
TEXTS = {('AliasAddress', 'dialedDigits'), ('AliasAddress', 'h323-ID'), ('AliasAddress', 'url-ID'),
         ('AliasAddress', 'email-ID')}
# The call's GUID.
GUIDS = {('CallIdentifier', 'guid')}
# Components that name where a value sits (forward or reverse parameters).
CONTEXTS = {('OpenLogicalChannel', 'forwardLogicalChannelParameters'),
            ('OpenLogicalChannel', 'reverseLogicalChannelParameters'),
            ('OpenLogicalChannelAck', 'reverseLogicalChannelParameters'),
            ('OpenLogicalChannelAck', 'forwardMultiplexAckParameters')}
ROLE = {'VALUE': VALUES, 'TEXT': TEXTS, 'GUID': GUIDS, 'CONTEXT': CONTEXTS}
# OCTET STRINGs that carry H.245 PDUs (H.225.0 §8.1.7, §8.2.1).
NESTED = {'fastStart': 'OpenLogicalChannel', 'h245Control': 'MultimediaSystemControlMessage',
          'parallelH245Control': 'MultimediaSystemControlMessage'}
# The CHOICEs whose alternative names the message ("setup", "openLogicalChannelAck").
MESSAGE_CHOICES = {'h323-message-body', 'RasMessage', 'RequestMessage', 'ResponseMessage',
                   'CommandMessage', 'IndicationMessage'}
ROOTS = [(H225, 'H323-UserInformation', 'USER_INFORMATION'), (H225, 'RasMessage', 'RAS_MESSAGE'),
         (H245, 'MultimediaSystemControlMessage', 'MULTIMEDIA_SYSTEM_CONTROL_MESSAGE'),
         (H245, 'OpenLogicalChannel', 'OPEN_LOGICAL_CHANNEL')]


def named(o):
    """The module-level type object o is, or refers to without changing PER."""
    tr = getattr(o, '_tr', None)
    if tr is None or getattr(tr, '_mod', None) is None or tr._parent is not None:
        return None
    return tr


def ident(s):
    return ''.join(c if c.isalnum() else '_' for c in s).upper()


def size(c):
    """(lb, ub or None, extensible) of a size constraint."""
    if c is None:
        return (0, None, False)
    ext = c._ev is not None
    if c.rdyn is None and c.lb is None:
        return (0, None, ext)
    lb, ub = c.lb, c.ub
    if ub is None or ub >= 65536:
        return (lb or 0, None, ext)
    return (lb, ub, ext)


def int_range(c):
    """(range, extensible): range 0 when not constrained on both ends."""
    if c is None:
        return (0, False)
    ext = c._ev is not None
    lb, ub = c.lb, c.ub
    if lb is None or ub is None:
        return (0, ext)
    return (ub - lb + 1, ext)


def char_bits(o):
    """Bits per character in aligned PER (X.691 §30.5.2)."""
    clen = o._clen
    if o._const_alpha is not None and o._const_alpha._ev is None:
        clen = o._const_alpha.rdyn
    if clen is None:
        return None
    b = 1
    while b < clen:
        b *= 2
    return b


class Node:
    def __init__(self, key, o, name):
        self.key, self.o, self.name = key, o, name
        self.kids = []     # (name, Node, flags) for SEQ/CHOICE root, then ext
        self.nroot = 0
        self.item = None   # SEQ OF item
        self.nested = None
        self.addr = None
        self.hit = False


NODES = {}


def build(o, key, name):
    if key in NODES:
        return NODES[key]
    n = Node(key, o, name)
    NODES[key] = n
    t = o.TYPE
    if t in ('SEQUENCE', 'CHOICE'):
        names = list(o._root) + list(o._ext or [])
        n.nroot = len(o._root)
        parent = (o._mod, o._name) if getattr(o, '_mod', None) and o._parent is None else None
        for cname in names:
            c = o._cont[cname]
            if c.TYPE == 'OCTET STRING' and cname in NESTED:
                kid = Node(key + '.' + cname, c, cname)
                kid.nested = top(H245, NESTED[cname])
                NODES[kid.key] = kid
            else:
                kid = child(c, key + '_' + cname, cname)
            flags = []
            if t == 'SEQUENCE' and cname in (o._root_opt or []):
                flags.append('OPT')
            tr = named(c)
            if tr is not None and (tr._mod, tr._name) in LABELLED:
                flags.append('LABEL')
            if (c.TYPE in ('SEQUENCE OF', 'SET OF') and named(c._cont) is not None
                    and (named(c._cont)._mod, named(c._cont)._name) in LABELLED):
                flags.append('LABEL')
            for role, where in ROLE.items():
                if parent is not None and (parent[1], cname) in where:
                    flags.append(role)
            n.kids.append((cname, kid, flags))
            if parent is not None and (parent[0], parent[1], cname) in ADDR:
                kid = NODES[kid.key]
                kid.addr = ADDR[(parent[0], parent[1], cname)]
    elif t in ('SEQUENCE OF', 'SET OF'):
        item = o._cont
        if name in NESTED:
            kid = Node(key + '.item', item, name)
            kid.nested = top(H245, NESTED[name])
            NODES[kid.key] = kid
            n.item = kid
        else:
            n.item = child(item, key + '_ITEM', name)
    return n


def child(c, key, name):
    tr = named(c)
    if tr is not None and tr.TYPE == c.TYPE and same_per(c, tr):
        return build(tr, '%s.%s' % (tr._mod, tr._name), tr._name)
    return build(c, key, name)


def same_per(a, b):
    t = a.TYPE
    if t in ('SEQUENCE', 'CHOICE'):
        return True
    if t == 'INTEGER':
        return int_range(a._const_val) == int_range(b._const_val)
    if t in ('SEQUENCE OF', 'SET OF', 'OCTET STRING', 'BIT STRING'):
        return size(a._const_sz) == size(b._const_sz)
    if t.endswith('String'):
        return size(a._const_sz) == size(b._const_sz) and char_bits(a) == char_bits(b)
    return True


def top(m, n):
    o = getattr(m, n.replace('-', '_'))
    return build(o, '%s.%s' % (o._mod, o._name), o._name)


roots = [top(m, n) for m, n, _ in ROOTS]

# What contains an address or a nested PDU (fixpoint: the graph has cycles).
changed = True
while changed:
    changed = False
    for n in NODES.values():
        if n.hit:
            continue
        h = (n.addr is not None or n.nested is not None
             or any(k.hit or set(f) & {'VALUE', 'TEXT', 'GUID'} for _, k, f in n.kids)
             or (n.item is not None and n.item.hit))
        if h:
            n.hit = True
            changed = True

# Which nodes the walker can reach, and whether it needs their end there.
WALKED = {}


def wanted(kid, flags):
    return kid.hit or bool(set(flags) & {'VALUE', 'TEXT', 'GUID'})


def walk(n, need_end):
    if WALKED.get(n.key, -1) >= need_end:
        return
    WALKED[n.key] = max(need_end, WALKED.get(n.key, 0))
    t = n.o.TYPE
    if n.nested is not None:
        walk(n.nested, 0)
        return
    if t == 'SEQUENCE':
        root = n.kids[:n.nroot]
        ext = n.kids[n.nroot:]
        ext_hit = any(wanted(k, f) for _, k, f in ext)
        last = max([i for i, (_, k, f) in enumerate(root) if wanted(k, f)], default=-1)
        upto = len(root) if (need_end or ext_hit) else last + 1
        for i in range(upto):
            later = need_end or ext_hit or i < last
            walk(root[i][1], 1 if later else 0)
        for _, k, f in ext:
            if wanted(k, f):
                walk(k, 0)
    elif t == 'CHOICE':
        for i, (_, k, f) in enumerate(n.kids):
            if i < n.nroot:
                if need_end or wanted(k, f):
                    walk(k, need_end)
            elif wanted(k, f):
                walk(k, 0)
    elif t in ('SEQUENCE OF', 'SET OF'):
        if need_end or n.item.hit:
            walk(n.item, 1)


for r in roots:
    walk(r, 0)


def expr(n):
    """A Rust expression for node n (a reference)."""
    if n.key not in WALKED:
        return '&Ty::Unwalked'
    t = n.o.TYPE
    o = n.o
    if n.nested is not None:
        return '&Ty::Nested(&%s)' % static_name(n.nested)
    if t in ('SEQUENCE', 'CHOICE', 'SEQUENCE OF', 'SET OF'):
        return '&' + static_name(n)
    if t == 'NULL':
        return '&Ty::Null'
    if t == 'BOOLEAN':
        return '&Ty::Bool'
    if t == 'INTEGER':
        r, e = int_range(o._const_val)
        lb = o._const_val.lb if o._const_val is not None and r else 0
        return '&Ty::Int { lb: %d, range: %d, ext: %s }' % (lb, r, str(e).lower())
    if t == 'ENUMERATED':
        return '&Ty::Enum { n: %d, ext: %s }' % (len(o._root), str(o._ext is not None).lower())
    if t == 'OCTET STRING':
        return '&Ty::Octets(%s)' % size_expr(o._const_sz)
    if t == 'BIT STRING':
        return '&Ty::Bits(%s)' % size_expr(o._const_sz)
    if t == 'OBJECT IDENTIFIER':
        return '&Ty::Oid'
    if t in ('OPEN_TYPE', 'ANY', 'CLASS') or t.startswith('TYPE'):
        return '&Ty::Open'
    if t.endswith('String'):
        b = char_bits(o)
        if b is None:
            return '&Ty::Octets(%s)' % size_expr(None)
        return '&Ty::Chars(%s, %d)' % (size_expr(o._const_sz), b)
    raise SystemExit('unsupported type %s at %s' % (t, n.key))


def size_expr(c):
    lb, ub, ext = size(c)
    return 'Size { lb: %d, ub: %s, ext: %s }' % (lb, 'NO_UB' if ub is None else ub, str(ext).lower())


NAMES = {}


def static_name(n):
    if n.key not in NAMES:
        base = ident(n.key.split('.', 1)[1])
        nm = base
        i = 2
        while nm in NAMES.values():
            nm = '%s_%d' % (base, i)
            i += 1
        NAMES[n.key] = nm
    return NAMES[n.key]


for n, (_, _, rust) in zip(roots, ROOTS):
    NAMES[n.key] = rust

lines = []
emitted = set()


def emit(n):
    if n.key in emitted or n.key not in WALKED:
        return
    emitted.add(n.key)
    t = n.o.TYPE
    if n.nested is not None:
        emit(n.nested)
        return
    if t in ('SEQUENCE', 'CHOICE'):
        fields = []
        for cname, k, flags in n.kids:
            f = list(flags)
            if k.hit or set(f) & {'VALUE', 'TEXT', 'GUID'}:
                f.append('HIT')
            if n.o.TYPE == 'SEQUENCE' and n.addr and cname == n.o._root[0]:
                assert k.o.TYPE == 'OCTET STRING', n.key
            if n.o.TYPE == 'SEQUENCE' and len([x for x in n.o._root_opt or []]) > 64:
                raise SystemExit('more than 64 optional components in %s' % n.key)
            fields.append('    Field { name: "%s", ty: %s, flags: %s },' % (
                cname, expr(k), ' | '.join(f) if f else '0'))
        root = fields[:n.nroot]
        ext = fields[n.nroot:]
        if t == 'SEQUENCE':
            root_hit = [i for i, (_, k, f) in enumerate(n.kids[:n.nroot]) if wanted(k, f)]
            ext_hit = any(wanted(k, f) for _, k, f in n.kids[n.nroot:])
            stop = n.nroot if (ext_hit or n.addr) else (max(root_hit) + 1 if root_hit else 0)
            lines.append('pub(crate) static %s: Ty = Ty::Seq(&Seq { // %s' % (static_name(n), n.name))
            lines.append('    ext: %s,' % str(n.o._ext is not None).lower())
            lines.append('    ext_hit: %s,' % str(ext_hit).lower())
            lines.append('    nopt: %d,' % len(n.o._root_opt or []))
            lines.append('    addr: %s,' % ('Some(Family::%s)' % n.addr if n.addr else 'None'))
            lines.append('    stop: %d,' % stop)
            lines.append('    root: &[')
        else:
            lines.append('pub(crate) static %s: Ty = Ty::Choice(&Choice { // %s' % (static_name(n), n.name))
            lines.append('    ext: %s,' % str(n.o._ext is not None).lower())
            lines.append('    message: %s,' % str(n.name in MESSAGE_CHOICES).lower())
            lines.append('    root: &[')
        lines.extend('    ' + f for f in root)
        lines.append('    ],')
        lines.append('    exts: &[')
        lines.extend('    ' + f for f in ext)
        lines.append('    ],')
        lines.append('});')
        for _, k, _ in n.kids:
            emit(k)
    elif t in ('SEQUENCE OF', 'SET OF'):
        lines.append('pub(crate) static %s: Ty = Ty::SeqOf(%s, %s, %s);' % (
            static_name(n), size_expr(n.o._const_sz), expr(n.item), str(n.item.hit).lower()))
        emit(n.item)


for r in roots:
    emit(r)

print('// @generated by tools/per-tables/gen.py from tests/corpus/asn1 (H.225.0 v6,')
print('// H.235, H.245 v13); do not edit. Only the types the walker reaches are here.')

print('use super::Family;')
print('use super::ty::*;')
print()
print('\n'.join(lines))
print('// %d nodes of %d' % (len(emitted), len(NODES)), file=sys.stderr)
