"""`ctypes` for a sandbox that cannot load native code: there is no libffi for wasm32-wasi, and no
shared library to load. Pure-Python packages import ctypes for its C type sizes (sympy:
`sizeof(c_long)`) or for platform code they never reach here; this module gives them the simple
types with their wasm32 sizes and values, and fails clearly on anything that would call C.
The SDK installs it as `ctypes` only when the real module cannot be imported.
"""

import struct as _struct


class ArgumentError(Exception):
    pass


def _unavailable(what):
    raise OSError(f"{what} is not available in the sandbox: it cannot load or call native code")


class _SimpleCData:
    """A C scalar: `.value`, and its wasm32 size for `sizeof`."""

    _type_ = "i"
    _size_ = 4

    def __init__(self, value=None):
        self.value = self._default() if value is None else value

    @classmethod
    def _default(cls):
        return 0

    def __repr__(self):
        return f"{type(self).__name__}({self.value!r})"

    def __eq__(self, other):
        return type(self) is type(other) and self.value == other.value


def _simple(name, code, default=0):
    size = _struct.calcsize("<" + code)
    return type(name, (_SimpleCData,), {"_type_": code, "_size_": size,
                                         "_default": classmethod(lambda cls: default)})


# wasm32: int, long, size_t and pointers are 32 bits.
c_bool = _simple("c_bool", "?", False)
c_char = _simple("c_char", "c", b"\0")
c_byte = _simple("c_byte", "b")
c_ubyte = _simple("c_ubyte", "B")
c_short = _simple("c_short", "h")
c_ushort = _simple("c_ushort", "H")
c_int = _simple("c_int", "i")
c_uint = _simple("c_uint", "I")
c_long = _simple("c_long", "i")
c_ulong = _simple("c_ulong", "I")
c_longlong = _simple("c_longlong", "q")
c_ulonglong = _simple("c_ulonglong", "Q")
c_float = _simple("c_float", "f", 0.0)
c_double = _simple("c_double", "d", 0.0)
c_longdouble = type("c_longdouble", (_SimpleCData,), {"_type_": "g", "_size_": 16})
c_void_p = _simple("c_void_p", "I", None)
c_char_p = _simple("c_char_p", "I", None)
c_wchar = type("c_wchar", (_SimpleCData,), {"_type_": "u", "_size_": 4})
c_wchar_p = _simple("c_wchar_p", "I", None)
c_size_t, c_ssize_t = c_uint, c_int
c_int8, c_uint8, c_int16, c_uint16 = c_byte, c_ubyte, c_short, c_ushort
c_int32, c_uint32, c_int64, c_uint64 = c_int, c_uint, c_longlong, c_ulonglong
c_time_t = c_longlong


def sizeof(obj_or_type):
    size = getattr(obj_or_type, "_size_", None)
    if size is None:
        raise TypeError("this type has no size")
    return size


def alignment(obj_or_type):
    return sizeof(obj_or_type)


class Structure:
    def __init__(self, *args, **kwargs):
        _unavailable("ctypes.Structure")


class Union(Structure):
    pass


class BigEndianStructure(Structure):
    pass


class LittleEndianStructure(Structure):
    pass


class Array:
    def __init__(self, *args, **kwargs):
        _unavailable("ctypes.Array")


def POINTER(cls):
    return type(f"LP_{getattr(cls, '__name__', 'c')}", (c_void_p,), {})


def pointer(obj):
    _unavailable("ctypes.pointer")


def byref(obj, offset=0):
    _unavailable("ctypes.byref")


def addressof(obj):
    _unavailable("ctypes.addressof")


def cast(obj, typ):
    _unavailable("ctypes.cast")


def create_string_buffer(init, size=None):
    _unavailable("ctypes.create_string_buffer")


create_unicode_buffer = create_string_buffer


class CDLL:
    def __init__(self, name, *args, **kwargs):
        _unavailable(f"loading the shared library {name!r}")


PyDLL = CDLL


class LibraryLoader:
    def __init__(self, dlltype):
        self._dlltype = dlltype

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._dlltype(name)

    def LoadLibrary(self, name):
        return self._dlltype(name)


cdll = LibraryLoader(CDLL)
pydll = LibraryLoader(PyDLL)


def CFUNCTYPE(restype, *argtypes, **kwargs):
    def unavailable(*args, **kwargs):
        _unavailable("ctypes.CFUNCTYPE")
    return unavailable


PYFUNCTYPE = CFUNCTYPE
RTLD_GLOBAL = RTLD_LOCAL = 0
