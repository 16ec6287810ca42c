"""Reading arrays out of an ``.npz`` archive that may be hostile: sizes checked before allocating.

:func:`numpy.load` trusts the archive: it decompresses any member it is asked for and allocates
whatever shape a member's ``.npy`` header claims.  :class:`Archive` reads only the members it is
asked for by name and, before it allocates anything, checks that

* the member is stored uncompressed (``fastnn.save`` never compresses), so the bytes it yields
  are bytes of the file: a member can never grow into more memory than the file occupies;
* its declared sizes fit inside the file, and all members read so far together fit inside the
  file too (two directory entries pointing at the same bytes are refused);
* its ``.npy`` header is short, names an allowed dtype (never ``object``) and a shape whose
  byte count equals the member's size exactly.

Every problem -- a bad zip structure, a bit flip anywhere, a header that lies -- raises
:class:`ArchiveError` with a one-line reason; :mod:`fastnn.io` adds the file name.  The CRC of
each member is checked by :mod:`zipfile` when its last byte is read.
"""
from __future__ import annotations

import io
import math
import os
import zipfile

import numpy as np

__all__ = ["Archive", "ArchiveError"]

#: longest ``.npy`` header accepted (NumPy's own default limit for untrusted files)
MAX_HEADER = 10000


class ArchiveError(Exception):
    """The archive is malformed, corrupted or not what it claims to be."""


def _reason(exc):
    text = str(exc).strip()
    text = text.splitlines()[0] if text else ""
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _fill(view, first, fp, name, chunk=1 << 20):
    """Fill ``view`` (bytes) with ``first`` then the rest of ``fp``; its end must be the
    member's end (reading the last byte makes zipfile check the CRC)."""
    view[:len(first)] = first
    pos = len(first)
    while pos < len(view):
        part = fp.read(min(chunk, len(view) - pos))
        if not part:
            raise ArchiveError(f"member {name!r} is truncated")
        view[pos:pos + len(part)] = part
        pos += len(part)
    if fp.read(1):
        raise ArchiveError(f"member {name!r} is longer than its header says")


class Archive:
    """A read-only view of the ``.npy`` members of a zip file, opened from ``fh``.

    Parameters
    ----------
    fh : binary file object opened for reading (seekable); the caller closes it.
    """

    def __init__(self, fh):
        self.size = os.fstat(fh.fileno()).st_size
        self._budget = self.size  # bytes that members may still take: their sum fits the file
        try:
            self._zip = zipfile.ZipFile(fh)
            infos = self._zip.infolist()
        except Exception as exc:  # zipfile raises many kinds on a damaged directory
            raise ArchiveError(f"not a readable zip archive ({_reason(exc)})") from None
        self._infos = {}
        for info in infos:
            if info.filename in self._infos:
                raise ArchiveError(f"the archive lists member {info.filename!r} twice")
            self._infos[info.filename] = info

    def names(self):
        """Names of the ``.npy`` members (without the suffix), in archive order."""
        return [n[:-4] for n in self._infos if n.endswith(".npy")]

    def __contains__(self, name):
        return name + ".npy" in self._infos

    def header(self, name, kinds):
        """``(dtype, shape)`` of member ``name`` after checking its sizes (the data is not read).

        ``kinds``: allowed ``dtype.kind`` letters.
        """
        return self._open(name, kinds, read_data=False)[:2]

    def read(self, name, kinds, *, shape=None, dtype=None, out=None):
        """The array stored in member ``name`` (a new array, or ``out`` filled in place).

        ``shape`` / ``dtype``: required values, checked from the header before any data is read.
        ``out``: a C-contiguous array of exactly that shape and dtype to read into (1-D).
        """
        return self._open(name, kinds, read_data=True, shape=shape, dtype=dtype, out=out)[2]

    def _open(self, name, kinds, *, read_data, shape=None, dtype=None, out=None):
        info = self._infos.get(name + ".npy")
        if info is None:
            raise ArchiveError(f"member {name!r} is missing")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ArchiveError(f"member {name!r} is compressed (method {info.compress_type}); "
                               "fastnn model files store their arrays uncompressed")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"member {name!r} is encrypted")
        if info.file_size != info.compress_size or info.header_offset + info.compress_size \
                > self.size:
            raise ArchiveError(f"member {name!r} declares {info.file_size} bytes, more than the "
                               f"{self.size}-byte file holds")
        if read_data:
            if info.compress_size > self._budget:
                raise ArchiveError("the archive's members overlap (they claim more bytes than "
                                   "the file holds)")
            self._budget -= info.compress_size
        try:
            with self._zip.open(info) as fp:
                head = io.BytesIO(fp.read(min(info.file_size, MAX_HEADER + 16)))
                version = np.lib.format.read_magic(head)
                if version == (1, 0):
                    hdr = np.lib.format.read_array_header_1_0(head, max_header_size=MAX_HEADER)
                elif version == (2, 0):
                    hdr = np.lib.format.read_array_header_2_0(head, max_header_size=MAX_HEADER)
                else:
                    raise ArchiveError(f"member {name!r} has .npy format {version}")
                got_shape, fortran, got_dtype = hdr
                self._check_header(name, kinds, got_shape, got_dtype, shape, dtype)
                nbytes = math.prod(got_shape) * got_dtype.itemsize
                if nbytes != info.file_size - head.tell():
                    raise ArchiveError(
                        f"member {name!r} holds {info.file_size - head.tell()} bytes of data, its "
                        f"header describes {nbytes} ({got_dtype.str} {got_shape})")
                if not read_data:
                    return got_dtype, got_shape, None
                if out is None:
                    target = np.empty(nbytes, dtype=np.uint8)
                else:  # the caller's buffer, filled directly: no second copy of the data
                    target = out.reshape(-1).view(np.uint8)
                _fill(memoryview(target), head.read(), fp, name)
        except ArchiveError:
            raise
        except Exception as exc:  # a damaged local header, CRC, ... in any of zipfile's forms
            raise ArchiveError(f"member {name!r} cannot be read ({_reason(exc)})") from None
        if out is not None:
            return got_dtype, got_shape, out
        flat = target.view(got_dtype)
        return got_dtype, got_shape, flat.reshape(got_shape, order="F" if fortran else "C")

    @staticmethod
    def _check_header(name, kinds, got_shape, got_dtype, shape, dtype):
        if got_dtype.hasobject or got_dtype.kind not in kinds or got_dtype.fields is not None \
                or got_dtype.subdtype is not None:
            raise ArchiveError(f"member {name!r} has dtype {got_dtype.str}, not one of the "
                               "plain types a model file holds")
        if got_dtype.itemsize == 0:
            raise ArchiveError(f"member {name!r} has zero-size items ({got_dtype.str})")
        if dtype is not None and got_dtype != np.dtype(dtype):
            raise ArchiveError(f"member {name!r} holds {got_dtype.str}, expected "
                               f"{np.dtype(dtype).str}")
        if shape is not None and tuple(got_shape) != tuple(shape):
            raise ArchiveError(f"member {name!r} has shape {tuple(got_shape)}, expected "
                               f"{tuple(shape)}")
