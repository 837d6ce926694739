"""Embedding: a lookup table from integer indices to learned vectors."""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from .._state import ParamState
from . import init
from ._module import Module

__all__ = ['Embedding']


def _normalize_embedding_size(size) -> tuple:
    flat = np.asarray(size).reshape(-1)
    if flat.size == 0:
        raise ValueError('embedding_size must contain at least one dimension.')
    size = tuple(int(n) for n in flat)
    if any(n < 0 for n in size):
        raise ValueError('embedding_size must not contain negative values.')
    return size


@lru_cache(maxsize=None)
def _embedding_lookup_fn(padding_idx, scale_grad_by_freq: bool):
    """``weight[indices]`` whose gradient skips ``padding_idx`` and, when
    ``scale_grad_by_freq``, divides each row's gradient by how often the row was looked up."""

    @jax.custom_vjp
    def lookup(weight, indices):
        return weight[jnp.asarray(indices)]

    def forward(weight, indices):
        indices = jnp.asarray(indices)
        return weight[indices], (indices, weight.shape)

    def backward(residual, g):
        indices, shape = residual
        g = jnp.asarray(g)
        flat = jnp.ravel(indices).astype(jnp.int32)
        if flat.size == 0:
            return jnp.zeros(shape, g.dtype), None
        rows = g.reshape((flat.shape[0],) + shape[1:])
        per_row = (flat.shape[0],) + (1,) * (rows.ndim - 1)
        if scale_grad_by_freq:
            counts = jnp.bincount(flat, length=shape[0]).astype(rows.dtype)
            rows = rows / jnp.where(counts == 0, 1.0, counts)[flat].reshape(per_row)
        if padding_idx is not None:
            rows = rows * (flat != padding_idx).reshape(per_row).astype(rows.dtype)
        return jnp.zeros(shape, g.dtype).at[flat].add(rows), None

    lookup.defvjp(forward, backward)
    return lookup


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of shape ``embedding_size``; ``layer(indices)``
    returns ``weight[indices]``.

    Args:
      num_embeddings: the number of rows.
      embedding_size: the shape of one row (an int or a tuple).
      embedding_init: the table's initializer or an array.
      padding_idx: a row kept at zero that receives no gradient.
      max_norm: rows looked up are renormalised to at most this norm (``norm_type``); the
        table is updated in place when called outside a trace.
      scale_grad_by_freq: divide gradients by the number of times each row was used.
      freeze: no gradient reaches the table.

    Example::

        emb = brainstate.nn.Embedding(1000, 64)
        emb(jnp.array([[1, 2, 3]])).shape        # (1, 3, 64)
    """

    __module__ = 'brainstate.nn'

    def __init__(self, num_embeddings: int, embedding_size, embedding_init=init.LecunUniform(),
                 padding_idx: int | None = None, max_norm: float | None = None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, freeze: bool = False,
                 name: str | None = None, param_type: type = ParamState):
        super().__init__(name=name)
        self.num_embeddings = int(num_embeddings)
        if self.num_embeddings < 0:
            raise ValueError('num_embeddings must not be negative.')
        self.embedding_size = _normalize_embedding_size(embedding_size)
        self.out_size = self.embedding_size
        if padding_idx is not None:
            padding_idx = int(padding_idx)
            if not 0 <= padding_idx < self.num_embeddings:
                raise ValueError(f'padding_idx must be within [0, {self.num_embeddings}).')
        self.padding_idx = padding_idx
        if max_norm is not None and max_norm <= 0:
            raise ValueError('max_norm must be positive when provided.')
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.freeze = bool(scale_grad_by_freq), bool(freeze)
        weight = init.param(embedding_init, (self.num_embeddings,) + self.out_size)
        if padding_idx is not None:
            weight = weight.at[padding_idx].set(0)
        self.weight = param_type(weight)
        self._lookup = _embedding_lookup_fn(padding_idx, self.scale_grad_by_freq)

    @classmethod
    def from_pretrained(cls, embeddings, padding_idx=None, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, freeze=True, name=None,
                        param_type: type = ParamState):
        """An Embedding holding ``embeddings`` (frozen by default)."""
        embeddings = jnp.asarray(embeddings)
        if embeddings.ndim < 2:
            raise ValueError('embeddings must be at least 2-dimensional')
        layer = cls(embeddings.shape[0], embeddings.shape[1:], embedding_init=embeddings,
                    padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                    scale_grad_by_freq=scale_grad_by_freq, freeze=freeze, name=name,
                    param_type=param_type)
        layer.weight = param_type(embeddings)
        return layer

    def update(self, indices):
        indices = jnp.asarray(indices)
        if not jnp.issubdtype(indices.dtype, jnp.integer):
            raise TypeError('Embedding indices must be integers.')
        weight = self.weight.value
        if self.max_norm is not None:
            renormed = self._apply_max_norm(weight, indices)
            if not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(renormed)):
                self.weight.value = renormed
            # The forward pass sees the renormalised rows; gradients flow to the raw table.
            weight = weight + jax.lax.stop_gradient(renormed - weight)
        if self.freeze:
            weight = jax.lax.stop_gradient(weight)
        return self._lookup(weight, indices)

    def _apply_max_norm(self, weight, indices):
        flat = jnp.ravel(indices).astype(jnp.int32)
        if self.padding_idx is not None and flat.size:
            flat = flat[flat != self.padding_idx]
        if flat.size == 0:
            return weight
        rows = weight[flat]
        rows_flat = rows.reshape((rows.shape[0], -1))
        norms = jnp.linalg.norm(rows_flat, ord=self.norm_type, axis=1, keepdims=True)
        scale = jnp.minimum(1.0, jnp.asarray(self.max_norm, rows_flat.dtype) / (norms + 1e-8))
        return weight.at[flat].set((rows_flat * scale.astype(rows_flat.dtype)).reshape(rows.shape))
