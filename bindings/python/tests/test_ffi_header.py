"""_ffi.py is kept in step with include/gunmetal.h: every function (name,
return type, argument types), every struct field (name, type, order) and
every constant of the header is declared with the matching ctypes type."""

from __future__ import annotations

import ctypes
import os
import re
from ctypes import POINTER
from typing import Any, Dict, List, Tuple

import pytest

from conftest import REPO
from gunmetal import _ffi

HEADER = os.path.join(REPO, "include", "gunmetal.h")

BASE = {
    "void": None,
    "int": ctypes.c_int,
    "unsigned": ctypes.c_uint,
    "unsigned int": ctypes.c_uint,
    "size_t": ctypes.c_size_t,
    "uint64_t": ctypes.c_uint64,
    "int64_t": ctypes.c_int64,
    "uint32_t": ctypes.c_uint32,
    "int32_t": ctypes.c_int32,
    "uint16_t": ctypes.c_uint16,
    "uint8_t": ctypes.c_uint8,
    "gm_ref": ctypes.c_uint64,
}
# Pointers the binding passes as plain addresses.
OPAQUE = {"gm_queue", "gm_conn", "gm_event", "void"}


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def c_to_ctypes(decl: str) -> Any:
    """'const gm_header *' → POINTER(gm_header), by the rules in _ffi's doc."""
    t = re.sub(r"\bconst\b", " ", decl)
    stars = t.count("*")
    base = " ".join(t.replace("*", " ").split())
    if stars == 0:
        if base not in BASE:
            raise AssertionError(f"no ctypes mapping for C type {decl!r}")
        return BASE[base]
    if base == "char":
        inner: Any = ctypes.c_char_p
    elif base in OPAQUE:
        inner = ctypes.c_void_p
    elif base in _ffi.STRUCTS:
        inner = POINTER(_ffi.STRUCTS[base])
    elif base in BASE and BASE[base] is not None:
        inner = POINTER(BASE[base])
    else:
        raise AssertionError(f"no ctypes mapping for C type {decl!r}")
    for _ in range(stars - 1):
        inner = POINTER(inner)
    return inner


def _split_param(p: str) -> Tuple[str, str]:
    """'const char *host' → ('const char *', 'host')."""
    m = re.match(r"^(.*?)([A-Za-z_]\w*)\s*$", p.strip())
    assert m, p
    return m.group(1).strip(), m.group(2)


def parse_header() -> Tuple[Dict[str, Tuple[Any, List[Any]]], Dict[str, List[Tuple[str, Any]]], Dict[str, int]]:
    with open(HEADER) as f:
        raw = f.read()
    text = _strip_comments(raw)
    # constants: #define GM_X value and enum { GM_X = v, ... }
    consts: Dict[str, int] = {}
    for name, val in re.findall(r"#define\s+(GM_[A-Z0-9_]+)\s+(0x[0-9a-fA-F]+|-?\d+)u?\b", text):
        consts[name] = int(val, 0)
    for body in re.findall(r"enum\s*\{(.*?)\}", text, flags=re.S):
        for name, val in re.findall(r"(GM_[A-Z0-9_]+)\s*=\s*(-?(?:0x[0-9a-fA-F]+|\d+))", body):
            consts[name] = int(val, 0)
    # structs
    structs: Dict[str, List[Tuple[str, Any]]] = {}
    for name, body in re.findall(r"typedef\s+struct\s+(\w+)\s*\{(.*?)\}\s*\w+\s*;", text, flags=re.S):
        fields = []
        for line in body.split(";"):
            line = line.strip()
            if not line:
                continue
            ctype, fname = _split_param(line)
            fields.append((fname, c_to_ctypes(ctype)))
        structs[name] = fields
    # functions: drop what is not a prototype, then match `type name(args);`
    flat = re.sub(r"typedef\s+struct\s+\w+\s*\{.*?\}\s*\w+\s*;", " ", text, flags=re.S)
    flat = re.sub(r"enum\s*\{.*?\}\s*;", " ", flat, flags=re.S)
    flat = re.sub(r"^\s*#.*$", " ", flat, flags=re.M)
    flat = re.sub(r'extern\s+"C"\s*\{', " ", flat)
    funcs: Dict[str, Tuple[Any, List[Any]]] = {}
    for ret, name, args in re.findall(r"([A-Za-z_][\w\s\*]*?)\b(gm_\w+)\s*\(([^()]*)\)\s*;", flat):
        ret = ret.strip()
        if ret.startswith("typedef"):
            continue
        params: List[Any] = []
        if args.strip() not in ("", "void"):
            for p in args.split(","):
                ctype, _ = _split_param(p)
                params.append(c_to_ctypes(ctype))
        funcs[name] = (c_to_ctypes(ret), params)
    return funcs, structs, consts


FUNCS, STRUCTS, CONSTS = parse_header()


def test_header_parsed() -> None:
    # A sanity check of the parser itself.
    assert "gm_request" in FUNCS and "gm_queue_poll" in FUNCS
    assert set(STRUCTS) >= {"gm_header", "gm_event", "gm_req_opts"}
    assert CONSTS["GM_EV_UP"] == 1 and CONSTS["GM_REQ_STREAM"] == 1


# Declared in the header but looked up as optional (test-only exports).
DECLARED = {**_ffi.FUNCTIONS, **_ffi.OPTIONAL_FUNCTIONS}


def test_every_header_function_is_declared() -> None:
    missing = sorted(set(FUNCS) - set(DECLARED))
    assert not missing, f"declare these header functions in _ffi.FUNCTIONS: {missing}"


def test_no_declaration_outside_the_header() -> None:
    extra = sorted(set(_ffi.FUNCTIONS) - set(FUNCS))
    assert not extra, f"_ffi.FUNCTIONS declares functions the header does not have: {extra}"


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_function_signature(name: str) -> None:
    if name not in DECLARED:
        pytest.fail(f"{name} not declared")
    ret, args = FUNCS[name]
    dret, dargs = DECLARED[name]
    assert dret is ret, f"{name}: restype {dret} != header's {ret}"
    assert len(dargs) == len(args), f"{name}: {len(dargs)} argtypes, header has {len(args)}"
    for i, (d, h) in enumerate(zip(dargs, args)):
        assert d is h, f"{name} argument {i}: {d} != header's {h}"


@pytest.mark.parametrize("name", ["gm_header", "gm_event", "gm_req_opts"])
def test_struct_fields(name: str) -> None:
    declared = [(f, t) for f, t in _ffi.STRUCTS[name]._fields_]
    assert [f for f, _ in declared] == [f for f, _ in STRUCTS[name]], f"{name} field names/order"
    for (f, d), (_, h) in zip(declared, STRUCTS[name]):
        assert d is h, f"{name}.{f}: {d} != header's {h}"


def test_every_struct_is_declared() -> None:
    assert set(STRUCTS) == set(_ffi.STRUCTS)


def test_constants() -> None:
    for name, value in CONSTS.items():
        if name.startswith("GM_VERSION"):
            continue
        assert hasattr(_ffi, name), f"_ffi lacks {name}"
        assert getattr(_ffi, name) == value, f"{name} = {getattr(_ffi, name)}, header says {value}"


def test_event_kinds_and_errors_have_python_names() -> None:
    import gunmetal
    from gunmetal._errors import _BY_CODE

    for name, value in CONSTS.items():
        if name.startswith("GM_EV_"):
            assert gunmetal.EventKind(value).name == name[len("GM_EV_"):]
        elif name.startswith("GM_WS_"):
            assert gunmetal.WSOpcode(value).name == name[len("GM_WS_"):]
        elif name.startswith("GM_E"):
            assert value in _BY_CODE, f"no exception class for {name}"


def test_loaded_library_exports_every_function() -> None:
    assert _ffi.missing == [], f"the loaded library lacks {_ffi.missing}"


def test_version_matches_header() -> None:
    import gunmetal

    with open(HEADER) as f:
        m = re.search(r'#define GM_VERSION_STRING "([^"]+)"', f.read())
    assert m
    assert gunmetal.version() == m.group(1)
    assert _ffi.gm_version_number() == CONSTS["GM_VERSION_MAJOR"] * 10000 + CONSTS[
        "GM_VERSION_MINOR"
    ] * 100 + CONSTS["GM_VERSION_PATCH"]


def test_struct_sizes_match_the_library() -> None:
    # The size field of a real event is sizeof(gm_event) as the library knows it.
    import gunmetal

    with gunmetal.Queue() as q:
        c = gunmetal.open("127.0.0.1", 1, owner=q, retry=0)
        try:
            out = ctypes.c_void_p()
            assert _ffi.gm_info(c._h(), ctypes.byref(out)) == 0
            size = ctypes.c_uint32.from_address(out.value).value  # type: ignore[arg-type]
            _ffi.gm_event_free(out.value)
            assert size == ctypes.sizeof(_ffi.gm_event)
        finally:
            c.close()
