"""Streaming safetensors I/O: memory-mapped reads and pre-planned sharded writes.

Reading maps each shard and hands out zero-copy tensor views; ``release``
drops a tensor's pages from this process (the page cache keeps them), so the
resident set stays near one tensor per model however large the model is.
Writing lays out every shard header up front (names, shapes and dtypes are
known before the merge starts) and then appends tensor bytes in order, so
nothing waits in memory for a shard to fill.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import MergeError

ST_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
ST_NAMES = {v: k for k, v in ST_DTYPES.items()}
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
_PAGE = mmap.PAGESIZE


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int  # absolute byte offset in the file
    end: int

    @property
    def numel(self) -> int:
        return int(torch.Size(self.shape).numel())


class SafetensorsFile:
    """One memory-mapped .safetensors file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fh = open(path, "rb")  # noqa: SIM115 - lives as long as the map
        except OSError as exc:
            raise MergeError(f"cannot open {path}: {exc.strerror}") from exc
        try:
            size = os.fstat(self._fh.fileno()).st_size
            raw = self._fh.read(8)
            if len(raw) != 8:
                raise MergeError(f"{path} is not a safetensors file (too short)")
            (header_len,) = struct.unpack("<Q", raw)
            if header_len > size - 8:
                raise MergeError(f"{path} is not a safetensors file (bad header length)")
            try:
                header = json.loads(self._fh.read(header_len))
            except ValueError as exc:
                raise MergeError(f"{path} has a corrupt safetensors header") from exc
            data_start = 8 + header_len
            self.tensors: dict[str, TensorInfo] = {}
            for name, meta in header.items():
                if name == "__metadata__":
                    continue
                if meta["dtype"] not in ST_DTYPES:
                    raise MergeError(f"{path}: tensor {name} has unsupported dtype {meta['dtype']}")
                begin, end = meta["data_offsets"]
                info = TensorInfo(
                    name=name,
                    dtype=ST_DTYPES[meta["dtype"]],
                    shape=tuple(meta["shape"]),
                    begin=data_start + begin,
                    end=data_start + end,
                )
                if info.end > size:
                    raise MergeError(f"{path} is truncated (tensor {name} runs past the end)")
                self.tensors[name] = info
            # A private (copy-on-write) map is writable, which torch.frombuffer wants,
            # and we never write to it.
            self._map = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_COPY) if size else None
        except BaseException:
            self._fh.close()
            raise

    def tensor(self, name: str) -> torch.Tensor:
        info = self.tensors[name]
        if info.numel == 0:
            return torch.empty(info.shape, dtype=info.dtype)
        flat = torch.frombuffer(self._map, dtype=info.dtype, count=info.numel, offset=info.begin)
        return flat.view(info.shape)

    def release(self, name: str, first: int = 0, last: int | None = None) -> None:
        """Drop the pages of elements [first, last) of ``name`` from this process's
        resident set (the data stays in the page cache; a later read faults it back)."""
        info = self.tensors[name]
        size = info.dtype.itemsize
        begin = info.begin + first * size
        end = info.end if last is None else min(info.end, info.begin + last * size)
        if self._map is None or end <= begin:
            return
        start = begin - begin % _PAGE
        self._map.madvise(mmap.MADV_DONTNEED, start, end - start)

    def close(self) -> None:
        if self._map is not None:
            # A tensor view may still exist; then the map goes when it is collected.
            with contextlib.suppress(BufferError):
                self._map.close()
        self._fh.close()


class ModelDir:
    """A Hugging Face model directory with safetensors weights (single or indexed)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise MergeError(f"model directory not found: {self.path}")
        config_path = self.path / "config.json"
        if not config_path.is_file():
            raise MergeError(f"missing file: {config_path}")
        try:
            self.config = json.loads(config_path.read_text())
        except ValueError as exc:
            raise MergeError(f"{config_path} is not valid JSON") from exc
        index_path = self.path / INDEX_NAME
        if index_path.is_file():
            try:
                weight_map = json.loads(index_path.read_text())["weight_map"]
            except (ValueError, KeyError) as exc:
                raise MergeError(f"{index_path} is not a safetensors index") from exc
            shard_names = list(dict.fromkeys(weight_map.values()))
        elif (self.path / SINGLE_NAME).is_file():
            shard_names = [SINGLE_NAME]
            weight_map = None
        else:
            raise MergeError(
                f"missing file: {self.path / SINGLE_NAME} (or {INDEX_NAME}); "
                "only safetensors weights are supported"
            )
        self.files: dict[str, SafetensorsFile] = {}
        self.where: dict[str, SafetensorsFile] = {}
        try:
            for shard in shard_names:
                shard_path = self.path / shard
                if not shard_path.is_file():
                    raise MergeError(f"missing file: {shard_path} (listed in {INDEX_NAME})")
                self.files[shard] = SafetensorsFile(shard_path)
            for shard, f in self.files.items():
                for name in f.tensors:
                    if weight_map is None or weight_map.get(name) == shard:
                        self.where[name] = f
            if weight_map is not None:
                missing = next((n for n in weight_map if n not in self.where), None)
                if missing is not None:
                    raise MergeError(
                        f"{self.path}: tensor {missing} is in {INDEX_NAME} "
                        f"but not in {weight_map[missing]}"
                    )
        except BaseException:
            self.close()
            raise

    @property
    def names(self) -> list[str]:
        return list(self.where)

    def info(self, name: str) -> TensorInfo:
        return self.where[name].tensors[name]

    def tensor(self, name: str) -> torch.Tensor:
        return self.where[name].tensor(name)

    def release(self, name: str, first: int = 0, last: int | None = None) -> None:
        self.where[name].release(name, first, last)

    def close(self) -> None:
        for f in self.files.values():
            f.close()


@dataclass(frozen=True)
class OutputTensor:
    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return (
            int(torch.Size(self.shape).numel()) * torch.empty((), dtype=self.dtype).element_size()
        )


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    """A zero-copy byte view of a contiguous CPU tensor (no numpy needed)."""
    nbytes = t.numel() * t.element_size()
    if nbytes == 0:
        return memoryview(b"")
    return memoryview((ctypes.c_char * nbytes).from_address(t.data_ptr())).cast("B")


class ShardedWriter:
    """Write tensors, in a fixed order, into pre-laid-out shards plus an index."""

    def __init__(self, directory: Path, plan: list[OutputTensor], *, shard_size: int) -> None:
        self.directory = Path(directory)
        shards: list[list[OutputTensor]] = [[]]
        size = 0
        for item in plan:
            if shards[-1] and size + item.nbytes > shard_size:
                shards.append([])
                size = 0
            shards[-1].append(item)
            size += item.nbytes
        total = len(shards)
        self.shard_names = [f"model-{i + 1:05d}-of-{total:05d}.safetensors" for i in range(total)]
        self._queue = [(i, item) for i, shard in enumerate(shards) for item in shard]
        self._shards = shards
        self._pos = 0
        self._fh = None
        self._open_shard = -1
        self.total_size = sum(item.nbytes for item in plan)

    def _header(self, shard: list[OutputTensor]) -> bytes:
        header: dict[str, object] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for item in shard:
            header[item.name] = {
                "dtype": ST_NAMES[item.dtype],
                "shape": list(item.shape),
                "data_offsets": [offset, offset + item.nbytes],
            }
            offset += item.nbytes
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        return struct.pack("<Q", len(raw)) + raw

    def write(self, name: str, tensor: torch.Tensor) -> None:
        shard_i, item = self._queue[self._pos]
        if item.name != name:
            raise RuntimeError(f"writer expected {item.name}, got {name}")
        if tuple(tensor.shape) != item.shape:
            raise RuntimeError(f"{name}: shape {tuple(tensor.shape)} != planned {item.shape}")
        if shard_i != self._open_shard:
            if self._fh is not None:
                self._fh.close()
            self._fh = open(self.directory / self.shard_names[shard_i], "wb")  # noqa: SIM115
            self._fh.write(self._header(self._shards[shard_i]))
            self._open_shard = shard_i
        data = tensor.detach().to(device="cpu", dtype=item.dtype).contiguous()
        self._fh.write(_tensor_bytes(data))
        del data
        self._pos += 1

    def finish(self) -> None:
        if self._pos != len(self._queue):
            raise RuntimeError("writer finished before every tensor was written")
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        weight_map = {item.name: self.shard_names[i] for i, item in self._queue}
        index = {"metadata": {"total_size": self.total_size}, "weight_map": weight_map}
        (self.directory / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
