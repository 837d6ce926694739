"""Sharded states: a State keeps the sharding of its value.

A state's sharding is one ``jax.sharding.Sharding`` per leaf of its value (``None`` for a leaf
left where JAX puts it), held in ``State._shardings``. It is set three ways:

* ``State(value, sharding=...)`` or ``state.sharding = ...`` (a Sharding, or a pytree of them
  matching the value): the value is placed there;
* a value that is already laid out over several devices (``jax.device_put(x, NamedSharding)``)
  is adopted with its sharding, when the state is created or set outside any transform;
* :func:`shard_states` gives a module's states shardings by ``{filter: PartitionSpec}`` rules.

The rule that keeps it: compiled steps (``jit`` and every eager transform) return written
states with ``out_shardings`` equal to their sharding, so a step never moves a state. A value
set outside any transform is placed into the state's sharding; one that is already laid out
over several devices in *another* sharding is refused with a :class:`StateValueError` naming
the state (set ``state.sharding`` first to move a state on purpose). ``shard_map`` writes a
state through ``state_out_specs``: a spec disagreeing with the state's sharding is the same
error.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
from jax.sharding import NamedSharding, PartitionSpec, Sharding, SingleDeviceSharding

from ._errors import ArgumentValueError, StateValueError

__all__ = ['shard_states', 'leaf_shardings', 'place_leaves', 'adopted_shardings',
           'sharding_of', 'spec_text', 'check_mesh_axis_types']


def spec_text(sharding) -> str:
    """A short text for a sharding: ``P('x', None)`` for a NamedSharding, else its repr."""
    if isinstance(sharding, NamedSharding):
        spec = ', '.join(repr(p) for p in sharding.spec)
        return f'P({spec})'
    return repr(sharding)


def check_mesh_axis_types(mesh, where: str):
    """brainstate's traced programs carry no sharding in their types, which JAX's *Explicit*
    mesh axes require: refuse such a mesh with the fix."""
    types = getattr(mesh, 'axis_types', ())
    explicit = [name for name, t in zip(mesh.axis_names, types) if 'Explicit' in str(t)]
    if explicit:
        raise ArgumentValueError(
            f'{where}: the mesh axes {explicit} are of type AxisType.Explicit (the default of '
            f'jax.make_mesh in this JAX version); brainstate supports Auto axes. Build the mesh '
            f'with jax.make_mesh(shape, names, axis_types=(jax.sharding.AxisType.Auto,) * '
            f'{len(mesh.axis_names)}) or jax.sharding.Mesh(devices, names).')


def leaf_shardings(label: str, treedef, sharding) -> tuple | None:
    """One Sharding (or None) per leaf from what a user gave: a Sharding for every leaf, or a
    pytree of them with the value's structure (a prefix of it)."""
    if sharding is None:
        return None
    if isinstance(sharding, Sharding):
        out = (sharding,) * treedef.num_leaves
    elif isinstance(sharding, PartitionSpec):
        raise StateValueError(
            f'State {label} was given the PartitionSpec {sharding}, which names mesh axes but no '
            f'mesh. Give a jax.sharding.NamedSharding(mesh, spec), or use '
            f'brainstate.shard_states(module, mesh, {{filter: spec}}).')
    else:
        try:
            template = treedef.unflatten([0] * treedef.num_leaves)
            out = tuple(jax.tree.leaves(jax.tree.map(
                lambda s, _: s, sharding, template,
                is_leaf=lambda s: s is None or isinstance(s, Sharding)),
                is_leaf=lambda s: s is None))
        except (ValueError, TypeError) as error:
            raise StateValueError(
                f'State {label}: the sharding {sharding!r} does not fit its value (structure '
                f'{treedef}); give one Sharding, or a pytree of them with the value\'s '
                f'structure. ({error})') from None
        if any(s is not None and not isinstance(s, Sharding) for s in out):
            raise StateValueError(
                f'State {label}: a sharding must be a jax.sharding.Sharding (e.g. '
                f'NamedSharding(mesh, PartitionSpec(...))); got {sharding!r}.')
    if all(s is None for s in out):
        return None
    for s in out:
        if isinstance(s, NamedSharding):
            check_mesh_axis_types(s.mesh, f'State {label}')
    return out


def sharding_of(shardings, treedef):
    """The user-facing form: one Sharding for a single-leaf value, else a pytree."""
    if shardings is None:
        return None
    if treedef.num_leaves == 1 and treedef.num_nodes == 1:
        return shardings[0]
    return treedef.unflatten(list(shardings))


def _multi_device(leaf) -> bool:
    return isinstance(leaf, jax.Array) and not isinstance(leaf.sharding, SingleDeviceSharding) \
        and len(leaf.sharding.device_set) > 1


def adopted_shardings(leaves) -> tuple | None:
    """The shardings of leaves already laid out over several devices (a state takes them)."""
    if not any(_multi_device(leaf) for leaf in leaves):
        return None
    return tuple(leaf.sharding if _multi_device(leaf) else None for leaf in leaves)


def place_leaves(label: str, leaves: list, shardings: tuple) -> list:
    """``leaves`` placed into ``shardings``. A leaf laid out over several devices in another
    sharding is an error naming the state: a state never changes its sharding silently."""
    out = []
    for i, (leaf, sharding) in enumerate(zip(leaves, shardings)):
        if sharding is None:
            out.append(leaf)
            continue
        if isinstance(leaf, jax.Array):
            current = leaf.sharding
            if current == sharding or current.is_equivalent_to(sharding, leaf.ndim):
                out.append(leaf)
                continue
            if _multi_device(leaf):
                where = '' if len(leaves) == 1 else f' (leaf {i})'
                raise StateValueError(
                    f'State {label}{where} is sharded as {spec_text(sharding)} but was given a '
                    f'value sharded as {spec_text(current)}; a state does not change its '
                    f'sharding silently. Set `state.sharding = ...` to move it, or write a '
                    f'value in its sharding (jax.device_put(x, state.sharding)).')
        try:
            out.append(jax.device_put(leaf, sharding))
        except ValueError as error:
            raise StateValueError(
                f'State {label} (shape {jax.numpy.shape(leaf)}) cannot be placed as '
                f'{spec_text(sharding)}: {error}') from None
    return out


def _resolve_spec(spec, state):
    return spec(state) if callable(spec) and not isinstance(spec, PartitionSpec) else spec


def shard_states(module, mesh, rules: Mapping[Any, Any]) -> dict:
    """Give a module's states shardings over ``mesh`` by rules, and move their values there.

    Args:
      module: a Module (or anything ``brainstate.graph.states`` walks).
      mesh: a ``jax.sharding.Mesh`` (with Auto axes).
      rules: ``{filter: spec}``, in order; a state takes the first rule whose filter selects
        it. A filter is anything ``module.states(...)`` accepts (a State class, a tag, a
        predicate ``f(path, state)``...). A spec is a ``PartitionSpec`` for every leaf, a
        pytree of them matching the value (e.g. ``{'weight': P(None, 'model'), 'bias':
        P('model')}``), or a function ``state -> spec``. States no rule selects are left as
        they are.

    Returns:
      ``{path: sharding}`` for every state given a sharding.

    Example::

        mesh = jax.sharding.Mesh(jax.devices(), ('model',))
        for layer in net.nodes(brainstate.nn.Linear).values():   # split outputs of each Linear
            brainstate.shard_states(layer, mesh, {brainstate.ParamState:
                                                  {'weight': P(None, 'model'), 'bias': P('model')}})
    """
    from .graph import states as graph_states
    check_mesh_axis_types(mesh, 'shard_states')
    # Every sharding is built first, so a rule that does not fit leaves every state unchanged.
    done, plan = set(), []
    for filter_, spec in rules.items():
        for path, state in graph_states(module, filter_).items():
            if id(state) in done:
                continue
            done.add(id(state))
            spec_value = _resolve_spec(spec, state)
            if spec_value is None:
                continue
            try:
                if isinstance(spec_value, PartitionSpec):
                    sharding = NamedSharding(mesh, spec_value)
                else:
                    sharding = jax.tree.map(
                        lambda p: None if p is None else NamedSharding(mesh, p), spec_value,
                        is_leaf=lambda p: p is None or isinstance(p, PartitionSpec))
            except ValueError as error:
                raise ValueError(
                    f'shard_states: the rule for {filter_!r} gives State {state.label()} the '
                    f'spec {spec_value}, which does not fit the mesh (axes '
                    f'{tuple(mesh.axis_names)}): {error} Name only axes of the mesh.') from error
            plan.append((path, state, sharding))
    given, undo = {}, []
    try:
        for path, state, sharding in plan:
            undo.append((state, state.sharding))
            state.sharding = sharding
            given[path] = state.sharding
    except BaseException:
        for state, previous in reversed(undo):  # nothing half done
            state.sharding = previous
        raise
    return given
