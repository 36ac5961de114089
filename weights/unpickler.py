"""A pickle unpickler that rebuilds PyTorch tensors and nothing else.

A `.pth` file is a pickle, and unpickling may call any function the file
names (`os.system` included). `RestrictedUnpickler` is Python's own
unpickler (the pure-Python `pickle._Unpickler`, so that every opcode goes
through a table this module controls) with three locks:

1. Globals: `find_class` maps the names `torch.save` uses to the inert
   stand-ins of `standins.py` and refuses every other name with
   `UnsafeCheckpointError`; the refused global is never imported or called.
2. Opcodes: only those a plain-data pickle needs run. INST, OBJ, NEWOBJ,
   NEWOBJ_EX (build an object of a named class), the copyreg extension codes
   and out-of-band buffers are refused. BUILD (set an object's state) runs
   only on an `OrderedDict` made by this very load, which is how `torch.save`
   attaches `_metadata` (per-module version numbers) to a state dict; that
   state is not needed and is dropped. BUILD on anything else (a storage
   type, a rebuild function, a tensor record) is refused, as
   `torch.load(weights_only=True)` refuses it: a refused file cannot leave a
   changed stand-in behind, and no tensor record escapes its validation.
3. Size: a pickle longer than `limits.MAX_PICKLE_BYTES` is refused (see there).

torch itself is never imported.
"""

import collections
import io
import pickle
import pickletools
import re

from .errors import UnsafeCheckpointError, WeightsFileError
from .limits import MAX_PICKLE_BYTES, megabytes, short
from .standins import TENSOR_GLOBALS, UNTYPED, StorageRef, Token, int_tuple

# Opcodes of plain data: containers, numbers, strings, memo, globals (checked by find_class), REDUCE
# (calls only what find_class returned), persistent ids (storages only) and protocol framing.
ALLOWED_OPCODES = {
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP",
    "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
    "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
    "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
    "EMPTY_LIST", "LIST", "APPEND", "APPENDS", "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS",
    "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
    "GET", "BINGET", "LONG_BINGET", "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE",
    "GLOBAL", "STACK_GLOBAL", "REDUCE", "PERSID", "BINPERSID", "BUILD",
}
STORAGE_KEY = re.compile(r"\w{1,64}")   # torch's keys are decimal numbers


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickle one pickle of a checkpoint, allowing only `allowed` globals.

    `source` names the file in error messages. The storages met on the way
    are collected in `self.storages` (root key -> (type token, element count)).
    """

    def __init__(self, file, source, allowed=TENSOR_GLOBALS):
        super().__init__(file, encoding="utf-8")
        self.source = source
        self.allowed = allowed
        self.storages = {}

    def find_class(self, module, name):
        # Called for every global the pickle names (GLOBAL, STACK_GLOBAL): the only way in.
        found = self.allowed.get((module, name))
        if found is None:
            raise UnsafeCheckpointError(f"{self.source}: refused to load the global '{module}.{name}': "
                                        f"{_why_refused(module, name)}")
        return found

    def load_build(self):
        # BUILD: stack [..., obj, state] -> obj.__setstate__(state) or obj.__dict__.update(state)
        state = self.stack.pop()
        target = self.stack[-1]
        if type(target) is not collections.OrderedDict or not isinstance(state, dict):
            raise UnsafeCheckpointError(
                f"{self.source}: refused to set the state of a {type(target).__name__} (BUILD opcode): "
                "a state dict may carry only its own _metadata")
        # torch's _metadata (module version numbers) is not needed: dropped, the dict stays a dict

    def persistent_load(self, pid):
        # torch writes ('storage', storage_type, key, location, numel) in zip
        # files and the same plus view_metadata in legacy files.
        if not isinstance(pid, tuple) or not pid or _text(pid[0]) != "storage":
            kind = _text(pid[0]) if isinstance(pid, tuple) and pid else pid
            raise UnsafeCheckpointError(
                f"{self.source}: refused persistent id {short(kind)}: only storages are allowed")
        if len(pid) not in (5, 6):
            raise UnsafeCheckpointError(f"{self.source}: malformed storage id {short(pid)}")
        stype, key, _location, numel = pid[1:5]
        key = _text(key)
        if not isinstance(stype, Token) or not isinstance(key, str) or not STORAGE_KEY.fullmatch(key):
            raise UnsafeCheckpointError(f"{self.source}: malformed storage id {short(pid)}")
        (numel,) = int_tuple((numel,), "storage size")
        if self.storages.setdefault(key, (stype, numel)) != (stype, numel):
            raise UnsafeCheckpointError(f"{self.source}: storage {key!r} is declared twice differently")
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return StorageRef(key, stype, 0, numel)
        if stype is UNTYPED or not isinstance(view, tuple) or len(view) != 3:
            raise UnsafeCheckpointError(f"{self.source}: malformed storage view {short(view)}")
        offset, view_numel = int_tuple(view[1:], "storage view")
        if offset + view_numel > numel:
            raise UnsafeCheckpointError(f"{self.source}: storage view {short(view)} exceeds storage {key!r}")
        return StorageRef(key, stype, offset, view_numel)


def _refuser(opcode):
    def refuse(self):
        raise UnsafeCheckpointError(f"{self.source}: refused the pickle opcode {opcode}: "
                                    "a state dict of tensors never needs it")
    return refuse


def _dispatch_table():
    """Every opcode byte -> its handler: Python's for the allowed ones, a refusal for the rest."""
    table = {}
    for op in pickletools.opcodes:
        code = op.code.encode("latin-1")[0]
        allowed = op.name in ALLOWED_OPCODES and code in pickle._Unpickler.dispatch
        table[code] = pickle._Unpickler.dispatch[code] if allowed else _refuser(op.name)
    table[pickle.BUILD[0]] = RestrictedUnpickler.load_build
    return table


RestrictedUnpickler.dispatch = _dispatch_table()


def _why_refused(module, name):
    if module.startswith(("torch.nn", "torchvision")):
        return ("a whole model (torch.save(model)) cannot be read safely; "
                "save and load model.state_dict() instead")
    if module == "torch" and name.endswith("Storage"):
        return "this tensor storage type is not supported"
    return "a weights file should hold only tensors (and plain numbers, strings, lists and dicts)"


def _text(value):
    """Python 2 era files may hold ids as bytes; torch decodes them as ASCII."""
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


def unpickle(file, source, allowed=TENSOR_GLOBALS, limit=MAX_PICKLE_BYTES):
    """Load one pickle from `file`; return (object, {storage key: (type, numel)}).

    At most `limit` bytes are read (into memory, then unpickled from there);
    a seekable `file` is left just after the pickle. Any failure (refused
    global or opcode, bad data, truncation, a longer pickle) is raised as a
    WeightsFileError naming `source`; an UnsafeCheckpointError stays one.
    """
    start = file.tell() if file.seekable() else None
    data = io.BytesIO(file.read(limit + 1))
    unpickler = RestrictedUnpickler(data, source, allowed)
    try:
        obj = unpickler.load()
    except WeightsFileError as err:
        if str(err).startswith(str(source)):
            raise
        raise type(err)(f"{source}: {err}") from None
    except Exception as err:  # a corrupt pickle can raise almost anything (MemoryError included)
        if isinstance(err, EOFError) and len(data.getbuffer()) > limit:
            raise WeightsFileError(f"{source}: a pickle longer than {megabytes(limit)}, "
                                   "more than any state dict needs") from None
        raise WeightsFileError(f"{source}: corrupt or truncated checkpoint "
                               f"({type(err).__name__}: {short(str(err))})") from None
    if data.tell() > limit:
        raise WeightsFileError(f"{source}: a pickle longer than {megabytes(limit)}, more than any state dict needs")
    if start is not None:
        file.seek(start + data.tell())
    return obj, unpickler.storages
