"""The verify rule every region kind shares, driven by the kind's signature.

Checked, with messages naming values as ``name_of`` does (the verifier gives the printed IR's
``%n``):

* the number of bodies;
* operand count: the signature's operand groups cover ``node.inputs`` and each body takes one
  input per operand that feeds it;
* results: each body gives one output per result it feeds (plus a while condition's predicate);
* types (shape and dtype; weak types may differ, lowering casts them): an operand and the body
  inputs it feeds (a scan's ``xs`` lose their leading loop axis), a body output and the result
  it gives (a scan's ``ys`` gain it), and a carry's initial value, body inputs, next value and
  final value all agree. Since every branch of a ``cond`` is checked against the same operands
  and results, the branches' signatures are equal.

Kinds add their own checks (a ``cond`` index is an integer scalar, a while condition returns a
boolean scalar) in ``check_extra``.
"""

from __future__ import annotations

from .._verifier import IRVerificationError

__all__ = ['verify_region', 'describe_region']


def describe_region(node, name_of) -> str:
    """``%4 %5 = scan %1 %2 %3``: the region's line of the printed IR, without params."""
    outs = ' '.join(name_of(v) for v in node.outputs)
    ins = ' '.join(name_of(v) for v in node.inputs)
    text = node.name + (f' {ins}' if ins else '')
    return f'{outs} = {text}' if outs else text


def _type(aval) -> str:
    try:
        return aval.str_short(short_dtypes=True)
    except TypeError:
        return aval.str_short()


def _same(a, b) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype


def _sizes(groups: dict, total: int) -> str:
    parts = []
    for name, s in groups.items():
        stop = s.stop if s.stop is not None else total
        parts.append(f'{name} {max(stop - s.start, 0)}')
    return ', '.join(parts)


def verify_region(kind, node, name_of) -> None:
    def fail(message):
        raise IRVerificationError(f'region `{describe_region(node, name_of)}`: {message}')

    bodies = node.subgraphs
    if kind.num_bodies is not None and len(bodies) != kind.num_bodies:
        fail(f'a {kind.name} region has {kind.num_bodies} bodies, this one {len(bodies)}.')
    if not bodies:
        fail(f'a {kind.name} region needs at least one body.')
    try:
        sig = kind.signature(node)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        fail(f'its params {node.params} do not describe a {kind.name} region ({error}).')
    n_in, n_out = len(node.inputs), len(node.outputs)
    covered = max((s.stop for s in sig.operand_groups.values()), default=0)
    if covered != n_in or any(s.start > s.stop for s in sig.operand_groups.values()):
        fail(f'it has {n_in} operands but its params describe {covered} '
             f'({_sizes(sig.operand_groups, n_in)}).')
    covered = max((s.stop for s in sig.result_groups.values()), default=0)
    if covered != n_out or any(s.start > s.stop for s in sig.result_groups.values()):
        fail(f'it has {n_out} results but its params describe {covered} '
             f'({_sizes(sig.result_groups, n_out)}).')
    for b, body in enumerate(sig.bodies):
        inputs, outputs = body.graph.inputs, body.graph.outputs
        if len(inputs) != len(body.input_operands):
            extra = len(body.input_operands) - len(inputs)
            fail(f'it has {n_in} operands ({_sizes(sig.operand_groups, n_in)}) so its body '
                 f'{b} ({body.graph.name}) should take {len(body.input_operands)} inputs, but it '
                 f'takes {len(inputs)} (one operand too {"many" if extra > 0 else "few"}'
                 f'{"" if abs(extra) == 1 else f" x{abs(extra)}"}).')
        if len(outputs) != len(body.output_results):
            fail(f'its body {b} ({body.graph.name}) should give {len(body.output_results)} '
                 f'outputs ({_sizes(body.output_groups, len(outputs))}), but it gives '
                 f'{len(outputs)}.')
        for k, (value, operand) in enumerate(zip(inputs, body.input_operands)):
            want = kind.body_input_aval(sig, b, k, node.inputs[operand].aval)
            if want is not None and not _same(value.aval, want):
                fail(f'operand {name_of(node.inputs[operand])}:'
                     f'{_type(node.inputs[operand].aval)} ({sig.operand_group(operand)}) feeds '
                     f'body {b} input {name_of(value)}:{_type(value.aval)}, which should be '
                     f'{_type(want)}.')
        for k, (value, result) in enumerate(zip(outputs, body.output_results)):
            if result is None:
                continue
            want = kind.body_output_aval(sig, b, k, node.outputs[result].aval)
            if want is not None and not _same(value.aval, want):
                fail(f'body {b} output {k} {name_of(value)}:{_type(value.aval)} gives result '
                     f'{name_of(node.outputs[result])}:{_type(node.outputs[result].aval)} '
                     f'({sig.result_group(result)}); it should be {_type(want)}.')
    for carry in sig.carries:
        init, final = carry.init, carry.final
        nxt = carry.next_value
        if not (_same(init.aval, final.aval) and _same(nxt.aval, final.aval)):
            fail(f'carry {name_of(init)} -> {name_of(final)} changes type: initial '
                 f'{_type(init.aval)}, next value {_type(nxt.aval)} (body {carry.body} output '
                 f'{carry.body_output}), final {_type(final.aval)}. A carry keeps its type.')
    kind.check_extra(sig, fail, name_of)
