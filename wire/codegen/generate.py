#!/usr/bin/env python3
"""Generates the C++ Kafka protocol codec from the JSON message specs in wire/schema.

Usage: generate.py --schema wire/schema --out <build dir>

For every FooBarRequest.json / FooBarResponse.json (and RequestHeader.json, ResponseHeader.json) it
writes <out>/wire/generated/foo_bar_request.{h,cc}; plus messages.h (includes all, type lists),
api_specs.{h,cc} (one table of API keys and version ranges, from the *Request.json files) and a
test-only testing/message_samples.{h,cc} that fills every message with non-default values for the
round-trip tests. Files are only rewritten when their content changes, so a re-run does not
trigger a rebuild; generated files that no longer correspond to a spec are deleted.

The spec format is described in wire/README.md and in Kafka's own README for the message folder.
Only the standard library is used: the build must not depend on anything but python3.
"""

import argparse
import json
import os
import re
import sys

INT16_MAX = 32767

# JSON type -> (C++ type, encoded size). All fixed-width, big-endian.
FIXED_TYPES = {
    'bool': ('bool', 1),
    'int8': ('int8_t', 1),
    'int16': ('int16_t', 2),
    'uint16': ('uint16_t', 2),
    'int32': ('int32_t', 4),
    'uint32': ('uint32_t', 4),
    'int64': ('int64_t', 8),
    'float64': ('double', 8),
    'uuid': ('wire::uuid', 16),
}
VARIABLE_TYPES = {'string', 'bytes', 'records'}

INT_RANGES = {
    'int8': (-2**7, 2**7 - 1),
    'int16': (-2**15, 2**15 - 1),
    'uint16': (0, 2**16 - 1),
    'int32': (-2**31, 2**31 - 1),
    'uint32': (0, 2**32 - 1),
    'int64': (-2**63, 2**63 - 1),
}

CPP_KEYWORDS = set('''
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t
char32_t class compl concept const consteval constexpr constinit const_cast continue co_await
co_return co_yield decltype default delete do double dynamic_cast else enum explicit export extern
false float for friend goto if inline int long mutable namespace new noexcept not not_eq nullptr
operator or or_eq private protected public register reinterpret_cast requires return short signed
sizeof static static_assert static_cast struct switch template this thread_local throw true try
typedef typeid typename union unsigned using virtual void volatile wchar_t while xor xor_eq
'''.split())

# Members every generated message has; a top-level spec field with one of these names gets a
# trailing '_' (nested structs only have unknown_tagged_fields, so ApiVersion.ApiKey stays api_key).
MESSAGE_MEMBERS = {'api_key', 'min_version', 'max_version', 'flexible_from', 'decode', 'encode',
                   'size', 'unknown_tagged_fields'}
# Names that member declarations look up unqualified; a member spelled like one would hide it.
RESERVED_NAMES = {'reader', 'writer', 'wire', 'std', 'raw_tagged_field', 'unknown_tagged_fields'}


class SpecError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Parsing


def strip_comments(text):
    """Removes // comments, leaving '//' inside JSON strings (e.g. URLs in "about") alone."""
    out = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == '\\' and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_string = False
            i += 1
            continue
        if c == '"':
            in_string = True
            out.append(c)
            i += 1
            continue
        if c == '/' and i + 1 < n and text[i + 1] == '/':
            while i < n and text[i] != '\n':
                i += 1
            continue
        out.append(c)
        i += 1
    return ''.join(out)


def snake(name):
    s = re.sub(r'([A-Z]+)([A-Z][a-z])', r'\1_\2', name)
    s = re.sub(r'([a-z0-9])([A-Z])', r'\1_\2', s)
    return s.lower()


def member_name(json_name, top_level):
    n = snake(json_name)
    if n in CPP_KEYWORDS or n in RESERVED_NAMES or (top_level and n in MESSAGE_MEMBERS):
        n += '_'
    return n


class Versions:
    """An inclusive version range; empty when lo > hi."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    @staticmethod
    def parse(spec, what):
        spec = str(spec).strip()
        if spec in ('none', ''):
            return Versions(0, -1)
        m = re.fullmatch(r'(\d+)\+', spec)
        if m:
            return Versions(int(m.group(1)), INT16_MAX)
        m = re.fullmatch(r'(\d+)-(\d+)', spec)
        if m:
            return Versions(int(m.group(1)), int(m.group(2)))
        m = re.fullmatch(r'\d+', spec)
        if m:
            return Versions(int(spec), int(spec))
        raise SpecError(f'{what}: bad version range {spec!r}')

    def empty(self):
        return self.lo > self.hi

    def contains(self, v):
        return self.lo <= v <= self.hi

    def intersect(self, o):
        return Versions(max(self.lo, o.lo), min(self.hi, o.hi))

    def minus(self, o):
        """self without o, assuming the result is one range (true for Kafka's tagged ranges)."""
        if o.empty() or self.intersect(o).empty():
            return self
        if o.lo <= self.lo and o.hi >= self.hi:
            return Versions(0, -1)
        if o.lo <= self.lo:
            return Versions(o.hi + 1, self.hi)
        if o.hi >= self.hi:
            return Versions(self.lo, o.lo - 1)
        raise SpecError('tagged versions split the field versions in two')

    def __str__(self):
        if self.empty():
            return 'none'
        if self.hi == INT16_MAX:
            return f'{self.lo}+'
        if self.lo == self.hi:
            return f'{self.lo}'
        return f'{self.lo}-{self.hi}'


def version_expr(r, within):
    """C++ condition on `v` for `r`, given that v is known to lie in `within`.

    Returns 'true' / 'false' when the answer does not depend on v. Bounds implied by `within` are
    left out, so the output never compares v against INT16_MAX (-Wtype-limits)."""
    eff = r.intersect(within)
    if eff.empty():
        return 'false'
    parts = []
    if eff.lo > within.lo:
        parts.append(f'v >= {eff.lo}')
    if eff.hi < within.hi:
        parts.append(f'v <= {eff.hi}')
    if not parts:
        return 'true'
    return ' && '.join(parts)


class Field:
    """One spec field; attributes are set by parse_field."""


class Struct:
    def __init__(self, json_name, fields_json, msg, is_message=False):
        self.json_name = json_name
        self.name = snake(json_name)
        self.fields_json = fields_json
        self.msg = msg
        self.is_message = is_message
        self.fields = []

    def cpp(self):
        """Qualified type name, elaborated when a top-level field of the same name hides it."""
        if self.is_message:
            return self.name
        q = f'{self.msg.name}::{self.name}'
        return f'struct {q}' if self.name in self.msg.member_names else q

    def cc(self):
        """Name used in the .cc: always elaborated, which is valid whether or not it is hidden."""
        return f'struct {self.cpp()}' if not self.cpp().startswith('struct ') else self.cpp()


class Message:
    """One spec file; attributes are set by parse_message."""


def parse_message(path):
    with open(path, encoding='utf-8') as f:
        text = f.read()
    try:
        spec = json.loads(strip_comments(text))
    except json.JSONDecodeError as e:
        raise SpecError(f'{path}: {e}')
    fname = os.path.basename(path)
    m = Message()
    m.file = fname
    m.json_name = spec['name']
    m.name = snake(spec['name'])
    m.kind = spec['type']
    if m.kind not in ('request', 'response', 'header'):
        raise SpecError(f'{fname}: unsupported type {m.kind!r}')
    m.api_key = spec.get('apiKey')
    m.valid = Versions.parse(spec['validVersions'], fname)
    flex = Versions.parse(spec.get('flexibleVersions', 'none'), fname)
    m.flexible = flex
    m.flexible_from = INT16_MAX if flex.empty() else flex.lo
    if not flex.empty() and flex.hi != INT16_MAX:
        raise SpecError(f'{fname}: flexibleVersions must be open-ended')
    m.unstable = bool(spec.get('latestVersionUnstable', False))
    m.structs = {}  # snake name -> Struct
    m.order = []  # nested structs in dependency order (children first)

    common = {}
    for c in spec.get('commonStructs', []):
        common[c['name']] = c
    m.common_json = common

    top = Struct(spec['name'], spec['fields'], m, is_message=True)
    m.top = top
    m.member_names = {member_name(f['name'], True) for f in spec['fields']}
    if m.name in m.member_names:
        raise SpecError(f'{fname}: a field has the name of the message')
    parse_struct(m, top)
    return m


def parse_struct(m, s):
    seen_names = set()
    for fj in s.fields_json:
        f = parse_field(m, s, fj)
        if f.name in seen_names:
            raise SpecError(f'{m.file}: duplicate field {f.name} in {s.name}')
        seen_names.add(f.name)
        s.fields.append(f)
    tags = [f.tag for f in s.fields if f.tag is not None]
    if len(tags) != len(set(tags)):
        raise SpecError(f'{m.file}: duplicate tag in {s.name}')
    if not s.is_message:
        if s.name in seen_names:
            raise SpecError(f'{m.file}: field named like its struct {s.name}')
        m.order.append(s)


def parse_field(m, owner, fj):
    f = Field()
    where = f"{m.file}: {owner.json_name}.{fj['name']}"
    f.json_name = fj['name']
    f.name = member_name(fj['name'], owner.is_message)
    f.about = fj.get('about', '')
    f.versions = Versions.parse(fj['versions'], where)
    f.nullable = Versions.parse(fj.get('nullableVersions', 'none'), where)
    f.has_nullable = 'nullableVersions' in fj
    f.tag = fj.get('tag')
    if f.tag is not None:
        f.tag = int(f.tag)
        f.tagged = Versions.parse(fj.get('taggedVersions', 'none'), where)
        if f.tagged.empty() or f.tagged.hi != INT16_MAX:
            raise SpecError(f'{where}: taggedVersions must be open-ended')
    else:
        f.tagged = Versions(0, -1)
    if 'flexibleVersions' in fj:
        f.flex_override = Versions.parse(fj['flexibleVersions'], where)
    else:
        f.flex_override = None
    f.default = fj.get('default')
    if f.default is not None:
        f.default = str(f.default)
        if f.default.lower() in ('true', 'false'):
            f.default = f.default.lower()  # AddPartitionsToTxnRequest spells it 'False'
    # Where the field sits on the wire: positional, or in the tag section.
    f.present = f.versions.intersect(m.valid)
    f.positional = f.present.minus(f.tagged)
    f.in_tags = f.present.intersect(f.tagged)

    t = fj['type']
    f.is_array = t.startswith('[]')
    base = t[2:] if f.is_array else t
    f.base = base
    f.struct = None
    if base in FIXED_TYPES or base in VARIABLE_TYPES:
        if 'fields' in fj:
            raise SpecError(f'{where}: primitive type with fields')
        if f.is_array and base in ('int8', 'bool', 'bytes', 'records'):
            raise SpecError(f'{where}: arrays of {base} are not supported')
    else:
        if 'fields' in fj:
            if base in m.common_json:
                raise SpecError(f'{where}: struct {base} is also a common struct')
            fields_json = fj['fields']
        elif base in m.common_json:
            fields_json = m.common_json[base]['fields']
        else:
            raise SpecError(f'{where}: unknown type {t}')
        sname = snake(base)
        if sname in MESSAGE_MEMBERS or sname == m.name:
            raise SpecError(f'{where}: struct name {sname} collides with the message')
        existing = m.structs.get(sname)
        if existing is not None:
            if existing.fields_json is not fields_json:
                raise SpecError(f'{where}: struct {base} defined twice')
            f.struct = existing
        else:
            st = Struct(base, fields_json, m)
            m.structs[sname] = st
            parse_struct(m, st)
            f.struct = st
    if f.is_array or base in ('string', 'bytes') or f.struct is not None:
        pass
    elif f.has_nullable and base != 'records':
        raise SpecError(f'{where}: {base} cannot be nullable')
    check_default(f, where)
    return f


def check_default(f, where):
    d = f.default
    if d is None:
        return
    if d == 'null':
        if not f.has_nullable:
            raise SpecError(f'{where}: null default on a non-nullable field')
        return
    if f.is_array or f.struct is not None or f.base in ('bytes', 'records', 'uuid'):
        if d != '':
            raise SpecError(f'{where}: custom default {d!r} not supported for {f.base}')
        return
    if f.base in INT_RANGES:
        lo, hi = INT_RANGES[f.base]
        try:
            val = int(d, 0)
        except ValueError:
            raise SpecError(f'{where}: bad integer default {d!r}')
        if not lo <= val <= hi:
            raise SpecError(f'{where}: default {d!r} out of range')
    elif f.base == 'bool':
        if d not in ('true', 'false'):
            raise SpecError(f'{where}: bad bool default {d!r}')
    elif f.base == 'float64':
        float(d)


# ---------------------------------------------------------------------------------------------
# C++ types, defaults and sizes


def elem_type(f):
    if f.struct is not None:
        return f.struct.cpp()
    if f.base in FIXED_TYPES:
        return FIXED_TYPES[f.base][0]
    if f.base == 'string':
        return 'std::string'
    if f.base == 'bytes':
        return 'std::vector<uint8_t>'
    if f.base == 'records':
        return 'wire::records'
    raise AssertionError(f.base)


def optional(f):
    """Nullable strings, bytes, arrays and structs are std::optional; records handle null."""
    return f.has_nullable and f.base != 'records'


def field_type(f):
    t = elem_type(f)
    if f.is_array:
        t = f'std::vector<{t}>'
    if optional(f):
        t = f'std::optional<{t}>'
    return t


def int_literal(base, val):
    if base == 'int64' and val == -2**63:
        return '(-9223372036854775807 - 1)'
    if base == 'int32' and val == -2**31:
        return '(-2147483647 - 1)'
    if base == 'uint32':
        return f'{val}u'
    return str(val)


def cpp_string_literal(s):
    out = '"'
    for ch in s:
        if ch in '"\\':
            out += '\\' + ch
        elif 32 <= ord(ch) < 127:
            out += ch
        else:
            out += ''.join(f'\\x{b:02x}' for b in ch.encode('utf-8'))
    return out + '"'


def default_init(f):
    """Member initialiser (including ' = ' or braces), or '' for a value-initialised member."""
    d = f.default
    if optional(f):
        if d == 'null':
            return ''
        if f.base == 'string' and not f.is_array:
            return ' = ' + cpp_string_literal(d or '')
        return '{std::in_place}'
    if f.is_array or f.struct is not None:
        return ''
    if f.base in INT_RANGES:
        return ' = ' + int_literal(f.base, int(d, 0) if d is not None else 0)
    if f.base == 'bool':
        return ' = ' + (d if d is not None else 'false')
    if f.base == 'float64':
        return ' = ' + repr(float(d) if d is not None else 0.0)
    if f.base == 'string':
        return ' = ' + cpp_string_literal(d) if d else ''
    if f.base == 'uuid':
        return '{}'
    return ''


def is_default_expr(f, acc):
    """C++ expression: true when `acc` holds the field's default (tagged fields are omitted then)."""
    d = f.default
    if optional(f):
        if d == 'null':
            return f'!{acc}.has_value()'
        if f.base == 'string' and not f.is_array:
            return f'({acc} && *{acc} == {cpp_string_literal(d or "")})'
        if f.is_array or f.base == 'bytes':
            return f'({acc} && {acc}->empty())'
        return f'({acc} && *{acc} == decltype({acc})::value_type{{}})'
    if f.is_array or f.base == 'bytes':
        return f'{acc}.empty()'
    if f.struct is not None:
        return f'{acc} == decltype({acc}){{}}'
    if f.base == 'string':
        return f'{acc}.empty()' if not d else f'{acc} == {cpp_string_literal(d)}'
    if f.base == 'uuid':
        return f'{acc} == wire::uuid{{}}'
    if f.base == 'records':
        return f'({acc}.size() == 0 && !{acc}.null)'
    init = default_init(f)
    return f'{acc} == {init[3:]}'


def struct_min_size(s, v, flexible):
    n = 1 if flexible else 0  # the tag section is at least its count byte
    for f in s.fields:
        if f.positional.contains(v):
            n += field_min_size(f, v, flexible)
    return n


def compact_at(f, v, flexible):
    if f.flex_override is not None:
        return f.flex_override.contains(v)
    return flexible


def field_min_size(f, v, flexible):
    compact = compact_at(f, v, flexible)
    nullable = f.nullable.contains(v)
    if f.is_array or f.base in ('bytes', 'records'):
        return 1 if compact else 4
    if f.base == 'string':
        return 1 if compact else 2
    if f.struct is not None:
        return 1 if nullable else struct_min_size(f.struct, v, flexible)
    return FIXED_TYPES[f.base][1]


def elem_min_size(f, v, flexible):
    if f.struct is not None:
        return struct_min_size(f.struct, v, flexible)
    if f.base == 'string':
        return 1 if compact_at(f, v, flexible) else 2
    return FIXED_TYPES[f.base][1]


def versioned_value_expr(values, within):
    """values: {version: int}. Emits nested ternaries over consecutive ranges of equal values."""
    versions = sorted(values)
    runs = []
    for v in versions:
        if runs and runs[-1][2] == values[v] and runs[-1][1] == v - 1:
            runs[-1][1] = v
        else:
            runs.append([v, v, values[v]])
    expr = str(runs[-1][2])
    for lo, hi, val in reversed(runs[:-1]):
        expr = f'({version_expr(Versions(lo, hi), within)} ? {val} : {expr})'
    return expr


# ---------------------------------------------------------------------------------------------
# Code emission


class Gen:
    def __init__(self, m):
        self.m = m
        self.within = Versions(m.valid.lo, m.valid.hi)
        self.flexible_any = not m.flexible.intersect(m.valid).empty()

    def fl_expr(self):
        return version_expr(self.m.flexible, self.within)

    def compact_expr(self, f):
        if f.flex_override is not None:
            return version_expr(f.flex_override, self.within)
        return 'fl' if self.flexible_any else 'false'

    def nullable_expr(self, f):
        return version_expr(f.nullable, f.present)

    def min_size_expr(self, f, vr):
        values = {}
        for v in range(max(vr.lo, self.m.valid.lo), min(vr.hi, self.m.valid.hi) + 1):
            values[v] = elem_min_size(f, v, self.m.flexible.contains(v))
        return versioned_value_expr(values, vr)

    # -- decode ------------------------------------------------------------------------------

    def read_stmt(self, f, rd, acc, vr, tagged):
        c = 'true' if tagged else self.compact_expr(f)
        if f.is_array:
            ms = self.min_size_expr(f, vr)
            if optional(f):
                return f'read_nullable_array({rd}, v, {c}, {self.nullable_expr(f)}, {ms}, {acc});'
            return f'read_array({rd}, v, {c}, {ms}, {acc});'
        if optional(f):
            if f.struct is not None:
                fn = 'read_nullable_tagged_struct' if tagged else 'read_nullable_struct'
                return f'{fn}({rd}, v, {self.nullable_expr(f)}, {acc});'
            return f'read_nullable({rd}, {c}, {self.nullable_expr(f)}, {acc});'
        return f'read_field({rd}, v, {c}, {acc});'

    def emit_read(self, s, out):
        out.append(f'static void read_field(reader& r, [[maybe_unused]] int16_t v, bool, {s.cc()}& x) {{')
        if self.flexible_any:
            out.append(f'  const bool fl = {self.fl_expr()};')
        for f in s.fields:
            cond = version_expr(f.positional, self.within)
            if cond == 'false':
                continue
            stmt = self.read_stmt(f, 'r', f'x.{f.name}', f.positional, False)
            out.append(f'  {stmt}' if cond == 'true' else f'  if ({cond}) {stmt}')
        if self.flexible_any:
            tagged = [f for f in s.fields if not f.in_tags.empty()]
            if not tagged:
                out.append('  if (fl) r.tagged_fields(x.unknown_tagged_fields, no_known_tags);')
            else:
                out.append('  if (fl) {')
                out.append('    r.tagged_fields(x.unknown_tagged_fields, [&](uint32_t tag, reader& s) {')
                out.append('      switch (tag) {')
                for f in sorted(tagged, key=lambda f: f.tag):
                    cond = version_expr(f.in_tags, self.within)
                    stmt = self.read_stmt(f, 's', f'x.{f.name}', f.in_tags, True)
                    if cond == 'true':
                        out.append(f'        case {f.tag}: {stmt} return true;')
                    else:
                        out.append(f'        case {f.tag}: if ({cond}) {{ {stmt} return true; }} break;')
                out.append('      }')
                out.append('      return false;')
                out.append('    });')
                out.append('  }')
        out.append('}')

    # -- encode ------------------------------------------------------------------------------

    def write_stmt(self, f, wr, acc, tagged):
        c = 'true' if tagged else self.compact_expr(f)
        if f.is_array:
            if optional(f):
                return f'write_nullable_array({wr}, v, {c}, {self.nullable_expr(f)}, {acc});'
            return f'write_array({wr}, v, {c}, {acc});'
        if optional(f):
            if f.struct is not None:
                fn = 'write_nullable_tagged_struct' if tagged else 'write_nullable_struct'
                return f'{fn}({wr}, v, {self.nullable_expr(f)}, {acc});'
            return f'write_nullable({wr}, {c}, {self.nullable_expr(f)}, {acc});'
        return f'write_field({wr}, v, {c}, {acc});'

    def size_expr(self, f, acc, tagged):
        c = 'true' if tagged else self.compact_expr(f)
        if f.is_array:
            if optional(f):
                return f'nullable_array_size(v, {c}, {self.nullable_expr(f)}, {acc})'
            return f'array_size(v, {c}, {acc})'
        if optional(f):
            if f.struct is not None:
                fn = 'nullable_tagged_struct_size' if tagged else 'nullable_struct_size'
                return f'{fn}(v, {self.nullable_expr(f)}, {acc})'
            return f'nullable_size({c}, {self.nullable_expr(f)}, {acc})'
        return f'field_size(v, {c}, {acc})'

    def tag_cond(self, f):
        cond = version_expr(f.in_tags, self.within)
        nd = f'!({is_default_expr(f, "x." + f.name)})'
        return nd if cond == 'true' else f'{cond} && {nd}'

    def emit_write(self, s, out):
        out.append(f'static void write_field(writer& w, [[maybe_unused]] int16_t v, bool, const {s.cc()}& x) {{')
        if self.flexible_any:
            out.append(f'  const bool fl = {self.fl_expr()};')
        for f in s.fields:
            cond = version_expr(f.positional, self.within)
            if cond == 'false':
                continue
            stmt = self.write_stmt(f, 'w', f'x.{f.name}', False)
            out.append(f'  {stmt}' if cond == 'true' else f'  if ({cond}) {stmt}')
        if self.flexible_any:
            tagged = [f for f in s.fields if not f.in_tags.empty()]
            if not tagged:
                out.append('  if (fl) write_unknown_tags(w, x.unknown_tagged_fields);')
            else:
                out.append('  if (fl) {')
                ordered = sorted(tagged, key=lambda f: f.tag)
                for f in ordered:
                    out.append(f'    const bool t{f.tag} = {self.tag_cond(f)};')
                count = ' + '.join(f't{f.tag}' for f in ordered)
                out.append(f'    tag_writer tags(w, x.unknown_tagged_fields, {count});')
                for f in ordered:
                    size = self.size_expr(f, f'x.{f.name}', True)
                    stmt = self.write_stmt(f, 'w', f'x.{f.name}', True)
                    out.append(f'    if (t{f.tag}) {{')
                    out.append(f'      tags.known({f.tag}, {size});')
                    out.append(f'      {stmt}')
                    out.append('    }')
                out.append('    tags.finish();')
                out.append('  }')
        out.append('}')

    def emit_size(self, s, out):
        out.append(f'static int64_t field_size([[maybe_unused]] int16_t v, bool, const {s.cc()}& x) {{')
        if self.flexible_any:
            out.append(f'  const bool fl = {self.fl_expr()};')
        out.append('  int64_t n = 0;')
        for f in s.fields:
            cond = version_expr(f.positional, self.within)
            if cond == 'false':
                continue
            e = self.size_expr(f, f'x.{f.name}', False)
            out.append(f'  n += {e};' if cond == 'true' else f'  if ({cond}) n += {e};')
        if self.flexible_any:
            tagged = [f for f in s.fields if not f.in_tags.empty()]
            if not tagged:
                out.append('  if (fl) n += tag_section_size(x.unknown_tagged_fields, 0, 0);')
            else:
                out.append('  if (fl) {')
                out.append('    int64_t count = 0, bytes = 0;')
                for f in sorted(tagged, key=lambda f: f.tag):
                    e = self.size_expr(f, f'x.{f.name}', True)
                    out.append(f'    if ({self.tag_cond(f)}) ++count, bytes += tag_entry_size({f.tag}, {e});')
                out.append('    n += tag_section_size(x.unknown_tagged_fields, count, bytes);')
                out.append('  }')
        out.append('  return n;')
        out.append('}')

    # -- header ------------------------------------------------------------------------------

    def field_comment(self, f):
        bits = [f'v{f.versions}']
        if not f.in_tags.empty():
            bits.append(f'tag {f.tag} from v{f.tagged}')
        if f.has_nullable:
            bits.append(f'nullable v{f.nullable}')
        if f.flex_override is not None:
            bits.append(f'flexible v{f.flex_override}')
        about = ' '.join(f.about.split())
        return f'// {", ".join(bits)}. {about}'.rstrip()

    def emit_members(self, s, out, ind):
        for f in s.fields:
            out.append(f'{ind}{self.field_comment(f)}')
            out.append(f'{ind}{field_type(f)} {f.name}{default_init(f)};')
        out.append(f'{ind}std::vector<raw_tagged_field> unknown_tagged_fields;')

    def header(self):
        m = self.m
        out = [GENERATED_BANNER.format(src=m.file), '#pragma once', '',
               '#include <cstdint>', '#include <optional>', '#include <string>',
               '#include <vector>', '', '#include "wire/codec.h"', '',
               'namespace sluice::wire {', '']
        out.append(f'// {m.json_name}, versions {m.valid}, flexible {m.flexible if not m.flexible.empty() else "none"}.')
        out.append(f'struct {m.name} {{')
        if m.api_key is not None:
            out.append(f'  static constexpr int16_t api_key = {m.api_key};')
        out.append(f'  static constexpr int16_t min_version = {m.valid.lo};')
        out.append(f'  static constexpr int16_t max_version = {m.valid.hi};')
        out.append(f'  static constexpr int16_t flexible_from = {"INT16_MAX" if m.flexible_from == INT16_MAX else m.flexible_from};')
        views = any(f.base == 'records' for st in [m.top] + list(m.order) for f in st.fields)
        out.append('  // Whether a decoded message points into the decoder\'s buffer (it has records): that')
        out.append('  // buffer must then outlive it; otherwise it may be freed as soon as decode() returns.')
        out.append(f'  static constexpr bool views_input = {"true" if views else "false"};')
        out.append('')
        for s in m.order:
            out.append(f'  struct {s.name} {{')
            self.emit_members(s, out, '    ')
            out.append(f'    bool operator==(const {s.name}&) const = default;')
            out.append('  };')
            out.append('')
        self.emit_members(m.top, out, '  ')
        out.append('')
        out.append('  // Reads the body at `version`; false if truncated, malformed or the version is out')
        out.append('  // of range. Strings and bytes are copied; records point into the reader\'s buffer.')
        out.append('  bool decode(reader& r, int16_t version);')
        out.append('  // Fields absent in `version` are skipped; a null in a version where the field is not')
        out.append('  // nullable is written as empty.')
        out.append('  void encode(writer& w, int16_t version) const;')
        out.append('  // Exact number of bytes encode() writes, record slices included.')
        out.append('  int64_t size(int16_t version) const;')
        out.append(f'  bool operator==(const {m.name}&) const = default;')
        out.append('};')
        out.append('')
        out.append('}  // namespace sluice::wire')
        return '\n'.join(out) + '\n'

    def source(self):
        m = self.m
        out = [GENERATED_BANNER.format(src=m.file),
               f'#include "wire/generated/{m.name}.h"', '', '#include "wire/field_codec.h"', '',
               'namespace sluice::wire {', '']
        for s in m.order + [m.top]:
            self.emit_read(s, out)
            self.emit_write(s, out)
            self.emit_size(s, out)
            out.append('')
        out.append(f'bool {m.name}::decode(reader& r, int16_t version) {{')
        out.append(f'  *this = {m.name}();')
        out.append('  if (version < min_version || version > max_version) r.fail();')
        out.append('  if (r.ok()) read_field(r, version, false, *this);')
        out.append('  return r.ok();')
        out.append('}')
        out.append('')
        out.append(f'void {m.name}::encode(writer& w, int16_t version) const {{ write_field(w, version, false, *this); }}')
        out.append('')
        out.append(f'int64_t {m.name}::size(int16_t version) const {{ return field_size(version, false, *this); }}')
        out.append('')
        out.append('}  // namespace sluice::wire')
        return '\n'.join(out) + '\n'

    # -- test samples ------------------------------------------------------------------------

    def sample_value(self, f, acc, k, out, ind):
        """Statements giving `acc` a non-default value (or null, now and then) at version v."""
        nullable = self.nullable_expr(f)
        if f.base == 'records':
            null_ok = nullable
            out.append(f'{ind}{acc} = sample_records(s + {k}, {null_ok});')
            return
        if optional(f):
            if nullable != 'false':
                out.append(f'{ind}if (({nullable}) && (s + {k}) % 3 == 2) {{ {acc}.reset(); }} else {{')
            else:
                out.append(f'{ind}{{')
            inner = f'{acc}.emplace()'
            self.sample_plain(f, inner, k, out, ind + '  ', emplaced=True)
            out.append(f'{ind}}}')
            return
        self.sample_plain(f, acc, k, out, ind)

    def sample_plain(self, f, acc, k, out, ind, emplaced=False):
        if emplaced:
            out.append(f'{ind}auto& o = {acc};')
            acc = 'o'
        if f.is_array:
            out.append(f'{ind}{acc}.resize(2);')
            out.append(f'{ind}for (int i = 0; i < 2; ++i) {{')
            e = f'{acc}[static_cast<size_t>(i)]'
            if f.struct is not None:
                out.append(f'{ind}  fill(v, s * 3 + {k} + i, {e});')
            else:
                out.append(f'{ind}  sample(s + {k} + i, {e});')
            out.append(f'{ind}}}')
        elif f.struct is not None:
            out.append(f'{ind}fill(v, s + {k}, {acc});')
        elif f.base == 'bool':
            d = f.default == 'true'
            out.append(f'{ind}{acc} = {"false" if d else "true"};')
        else:
            out.append(f'{ind}sample(s + {k}, {acc});')

    def emit_fill(self, s, out):
        out.append(f'static void fill([[maybe_unused]] int16_t v, [[maybe_unused]] int s, {s.cc()}& x) {{')
        for k, f in enumerate(s.fields):
            cond = version_expr(f.present, self.within)
            if cond == 'false':
                continue
            body = []
            self.sample_value(f, f'x.{f.name}', k + 1, body, '    ' if cond != 'true' else '  ')
            if cond == 'true':
                out.extend(body)
            else:
                out.append(f'  if ({cond}) {{')
                out.extend(body)
                out.append('  }')
        if self.flexible_any:
            out.append(f'  if ({self.fl_expr()}) x.unknown_tagged_fields = sample_unknown_tags(s);')
        out.append('}')


GENERATED_BANNER = ('// Generated by wire/codegen/generate.py from wire/schema/{src}. Do not edit.\n'
                    '// The schema is Apache Kafka\'s (Apache License 2.0, see wire/schema/LICENSE).')


# ---------------------------------------------------------------------------------------------
# Aggregate files


def messages_header(msgs):
    out = [GENERATED_BANNER.format(src='*.json'), '#pragma once', '']
    for m in msgs:
        out.append(f'#include "wire/generated/{m.name}.h"')
    out += ['', 'namespace sluice::wire {', '',
            'template <class... T>', 'struct message_list {};', '',
            '// Every generated request and response body (headers excluded).',
            'using all_messages = message_list<']
    bodies = [m for m in msgs if m.kind != 'header']
    out.append(',\n'.join(f'    {m.name}' for m in bodies) + '>;')
    out += ['', 'using all_headers = message_list<request_header, response_header>;', '',
            '// api<key>::request / api<key>::response: the body types of an API key.',
            'template <int16_t api_key>', 'struct api;']
    by_key = {}
    for m in bodies:
        by_key.setdefault(m.api_key, {})[m.kind] = m
    for key in sorted(by_key):
        pair = by_key[key]
        if 'request' in pair and 'response' in pair:
            out.append(f'template <>\nstruct api<{key}> {{\n  using request = {pair["request"].name};\n'
                       f'  using response = {pair["response"].name};\n}};')
    out += ['', '}  // namespace sluice::wire']
    return '\n'.join(out) + '\n'


API_SPECS_H = '''{banner}
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace sluice::wire {{

// One entry per API key, from the *Request.json specs.
struct api_spec {{
  int16_t key;
  std::string_view name;  // the spec name without "Request", e.g. "ApiVersions"
  int16_t min_version;
  int16_t max_version;
  int16_t flexible_from;  // INT16_MAX if the API has no flexible version
  // The spec marks max_version as still under development; Kafka does not advertise it.
  bool latest_version_unstable;
}};

// nullptr if the key is not in wire/schema.
const api_spec* find_api_spec(int16_t api_key);
// All specs, ascending by key.
std::span<const api_spec> all_api_specs();

// Request header version for a request: 2 if the version is flexible, else 1 (0 only for
// ControlledShutdown v0, key 7). Unknown keys get 1: their header still parses as v1.
int16_t request_header_version(int16_t api_key, int16_t api_version);
// Response header version: 1 if the version is flexible, else 0. ApiVersions (18) is always 0 so
// that a client can read the response before it knows which versions the broker supports.
int16_t response_header_version(int16_t api_key, int16_t api_version);

}}  // namespace sluice::wire
'''

API_SPECS_CC = '''{banner}
#include "wire/generated/api_specs.h"

#include <algorithm>
#include <array>

namespace sluice::wire {{
namespace {{

constexpr std::array<api_spec, {count}> specs{{{{
{rows}
}}}};

// ControlledShutdown v0 predates the client id in the request header (header v0).
constexpr int16_t controlled_shutdown_key = 7;
constexpr int16_t api_versions_key = 18;

bool is_flexible(int16_t api_key, int16_t api_version) {{
  const api_spec* s = find_api_spec(api_key);
  return s != nullptr && api_version >= s->flexible_from;
}}

}}  // namespace

const api_spec* find_api_spec(int16_t api_key) {{
  auto it = std::lower_bound(specs.begin(), specs.end(), api_key,
                             [](const api_spec& s, int16_t k) {{ return s.key < k; }});
  return it != specs.end() && it->key == api_key ? &*it : nullptr;
}}

std::span<const api_spec> all_api_specs() {{ return specs; }}

int16_t request_header_version(int16_t api_key, int16_t api_version) {{
  if (api_key == controlled_shutdown_key && api_version == 0) return 0;
  return is_flexible(api_key, api_version) ? 2 : 1;
}}

int16_t response_header_version(int16_t api_key, int16_t api_version) {{
  if (api_key == api_versions_key) return 0;
  return is_flexible(api_key, api_version) ? 1 : 0;
}}

}}  // namespace sluice::wire
'''


def api_specs_files(msgs):
    reqs = sorted((m for m in msgs if m.kind == 'request'), key=lambda m: m.api_key)
    rows = []
    for m in reqs:
        name = m.json_name[:-len('Request')]
        ff = 'INT16_MAX' if m.flexible_from == INT16_MAX else str(m.flexible_from)
        rows.append(f'    {{{m.api_key}, "{name}", {m.valid.lo}, {m.valid.hi}, {ff}, '
                    f'{"true" if m.unstable else "false"}}},')
    banner = GENERATED_BANNER.format(src='*Request.json')
    h = API_SPECS_H.format(banner=banner)
    cc = API_SPECS_CC.format(banner=banner, count=len(reqs), rows='\n'.join(rows))
    return h, cc


SAMPLES_H = '''{banner}
#pragma once
// Test support: fills a message with non-default values for every field present at a version,
// nulls now and then where the version allows them, and an unknown tagged field in flexible
// versions. Different seeds give different values. Only linked into the tests.

#include <cstdint>

#include "wire/generated/messages.h"

namespace sluice::wire::testing {{

{decls}

}}  // namespace sluice::wire::testing
'''


def samples_files(msgs):
    decls = '\n'.join(f'void fill_sample({m.name}& x, int16_t version, int seed);' for m in msgs)
    h = SAMPLES_H.format(banner=GENERATED_BANNER.format(src='*.json'), decls=decls)
    out = [GENERATED_BANNER.format(src='*.json'),
           '#include "wire/generated/testing/message_samples.h"', '',
           '#include "wire/tests/sample_values.h"', '',
           'namespace sluice::wire {', '']
    for m in msgs:
        g = Gen(m)
        out.append(f'// {m.json_name}')
        for s in m.order + [m.top]:
            g.emit_fill(s, out)
        out.append('')
    out.append('namespace testing {')
    out.append('')
    for m in msgs:
        out.append(f'void fill_sample({m.name}& x, int16_t version, int seed) {{')
        out.append(f'  x = {m.name}();')
        out.append('  fill(version, seed, x);')
        out.append('}')
    out.append('')
    out.append('}  // namespace testing')
    out.append('}  // namespace sluice::wire')
    return h, '\n'.join(out) + '\n'


# ---------------------------------------------------------------------------------------------
# Driver


def write_if_changed(path, content, written):
    written.add(os.path.abspath(path))
    try:
        with open(path, encoding='utf-8') as f:
            if f.read() == content:
                return
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(content)
    os.replace(tmp, path)


def remove_stale(root, written):
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.abspath(os.path.join(dirpath, name))
            if p not in written and (name.endswith('.h') or name.endswith('.cc')):
                os.remove(p)


def load_all(schema_dir):
    files = sorted(f for f in os.listdir(schema_dir)
                   if f.endswith('Request.json') or f.endswith('Response.json')
                   or f in ('RequestHeader.json', 'ResponseHeader.json'))
    if not files:
        raise SpecError(f'no specs in {schema_dir}')
    msgs = [parse_message(os.path.join(schema_dir, f)) for f in files]
    names = {}
    for m in msgs:
        if m.name in names:
            raise SpecError(f'{m.file} and {names[m.name]} both generate {m.name}')
        names[m.name] = m.file
        if m.kind != 'header' and m.api_key is None:
            raise SpecError(f'{m.file}: no apiKey')
    for h in ('request_header', 'response_header'):
        if h not in names:
            raise SpecError(f'missing {h} spec')
    # Kafka's generator pairs a request with its response by name, never reading the response's
    # apiKey, and at least one upstream response carries a wrong one
    # (DescribeTopicPartitionsResponse.json says 74 for key 75): the request's key wins.
    requests = {m.name[:-len('_request')]: m for m in msgs if m.kind == 'request'}
    for m in msgs:
        if m.kind == 'response':
            q = requests.get(m.name[:-len('_response')])
            if q is not None:
                m.api_key = q.api_key
    # A response must describe every version of its request. It may describe more: Kafka 4 dropped
    # old request versions (KIP-896) while some stored response files still list them
    # (AlterPartitionResponse.json says 0-3 for a 2-3 request).
    by_key = {}
    for m in msgs:
        if m.kind != 'header':
            by_key.setdefault(m.api_key, {})[m.kind] = m
    for key, pair in by_key.items():
        if set(pair) != {'request', 'response'}:
            raise SpecError(f'api key {key}: request or response spec missing')
        q, r = pair['request'], pair['response']
        if r.valid.lo > q.valid.lo or r.valid.hi < q.valid.hi:
            raise SpecError(f'api key {key}: the response lacks versions of the request')
    return msgs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--schema', required=True, help='directory with the Kafka JSON specs')
    ap.add_argument('--out', required=True, help='output root; files go to <out>/wire/generated')
    args = ap.parse_args()
    try:
        msgs = load_all(args.schema)
    except (SpecError, KeyError) as e:
        print(f'generate.py: {e}', file=sys.stderr)
        return 1
    gen_dir = os.path.join(args.out, 'wire', 'generated')
    written = set()
    for m in msgs:
        g = Gen(m)
        write_if_changed(os.path.join(gen_dir, m.name + '.h'), g.header(), written)
        write_if_changed(os.path.join(gen_dir, m.name + '.cc'), g.source(), written)
    write_if_changed(os.path.join(gen_dir, 'messages.h'), messages_header(msgs), written)
    h, cc = api_specs_files(msgs)
    write_if_changed(os.path.join(gen_dir, 'api_specs.h'), h, written)
    write_if_changed(os.path.join(gen_dir, 'api_specs.cc'), cc, written)
    h, cc = samples_files(msgs)
    write_if_changed(os.path.join(gen_dir, 'testing', 'message_samples.h'), h, written)
    write_if_changed(os.path.join(gen_dir, 'testing', 'message_samples.cc'), cc, written)
    remove_stale(gen_dir, written)
    return 0


if __name__ == '__main__':
    sys.exit(main())
