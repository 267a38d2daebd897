"""Parser for the IDX format of MNIST and Fashion-MNIST (LeCun et al., http://yann.lecun.com/exdb/mnist/).

The format is a big-endian header (two zero bytes, a type code, the number of dimensions, then one
uint32 per dimension) followed by the raw array. Everything is checked: a truncated or padded file
is an error that names the file, never a silently shorter array.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ganbench.core.errors import GanbenchError

_UBYTE = 0x08


def read_idx_bytes(path: Path) -> bytes:
    """Return the (decompressed) bytes of an .idx or .idx.gz file."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, OSError, zlib.error) as err:
        raise GanbenchError(
            f"{path} is not a readable gzip file ({err}); it is truncated or corrupt: delete it and "
            "run `ganbench data fetch` again"
        ) from err


def parse_idx(data: bytes, source: str, expect_ndim: int) -> np.ndarray:
    """Parse IDX bytes into a uint8 array, validating magic number, dimensions and length."""
    if len(data) < 4:
        raise GanbenchError(f"{source}: {len(data)} bytes is too short for an IDX header")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != _UBYTE or ndim != expect_ndim:
        raise GanbenchError(
            f"{source}: bad IDX magic number 0x{int.from_bytes(data[:4], 'big'):08x}; expected "
            f"0x{(_UBYTE << 8) | expect_ndim:08x} (unsigned bytes, {expect_ndim} dimensions)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise GanbenchError(f"{source}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise GanbenchError(
            f"{source}: {len(data)} bytes but the header promises {expected} for shape {shape}; "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array as IDX (the inverse of :func:`parse_idx`)."""
    assert array.dtype == np.uint8
    head = struct.pack(">HBB", 0, _UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + np.ascontiguousarray(array).tobytes()
