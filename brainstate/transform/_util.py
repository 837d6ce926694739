"""Small helpers of the gradient transforms, kept under their published names."""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax

__all__ = ['warp_grad_fn', 'tree_random_split']


def warp_grad_fn(fn: Callable, argnums: int | Sequence[int], args: Sequence[Any], kwargs: dict):
    """``(new_fn, params)``: ``new_fn(params)`` calls ``fn`` with the positional arguments
    ``argnums`` replaced by ``params`` (one value for an int, a sequence for a sequence), and
    ``params`` are their current values. IndexError for a position out of range."""
    args = tuple(args)
    if isinstance(argnums, int):
        if not 0 <= argnums < len(args):
            raise IndexError(f'argnum {argnums} is out of range {len(args)}')

        @functools.wraps(fn)
        def new_fn(dyn_arg):
            new_args = list(args)
            new_args[argnums] = dyn_arg
            return fn(*new_args, **kwargs)

        return new_fn, args[argnums]
    argnums = tuple(argnums)
    for i in argnums:
        if not 0 <= i < len(args):
            raise IndexError(f'argnum {i} is out of range {len(args)}')

    @functools.wraps(fn)
    def new_fn(dyn_args):
        if len(dyn_args) != len(argnums):
            raise ValueError(f'expected {len(argnums)} values, got {len(dyn_args)}')
        new_args = list(args)
        for i, value in zip(argnums, dyn_args):
            new_args[i] = value
        return fn(*new_args, **kwargs)

    return new_fn, tuple(args[i] for i in argnums)


def tree_random_split(rng_key, target=None, treedef=None):
    """One new PRNG key per leaf of ``target`` (or of ``treedef``), in that structure."""
    if treedef is None:
        treedef = jax.tree.structure(target)
    keys = jax.random.split(rng_key, treedef.num_leaves)
    return jax.tree.unflatten(treedef, list(keys))
