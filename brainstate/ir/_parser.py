"""Reading the IR's text form back into a Graph, so a reproducer can be replayed.

:func:`parse` reads what :func:`~brainstate.ir.format_graph` prints: the exact form
(``graph.format(exact=True)``, which reproducers use) without loss for the primitives and params
it prints, and the ordinary form as far as it goes: a param printed truncated (``...``) or as
``{jaxpr}`` cannot be read back and is an error naming it; params the ordinary form leaves out
because they are None are restored where the primitive's abstract evaluation names them, which
is enough to verify and run passes, though some lowering rules want more (``accuracy`` of
``sin``): replay from the exact form.

Param values are read by a small evaluator, never by ``eval``: Python literals, dtype names
(``float32``), ``None``/``nan``/``inf``, the ``lax`` parameter types (``GatherDimensionNumbers(...)``,
``GatherScatterMode.FILL_OR_DROP``, ``Precision.HIGHEST``, ...) and ``array([...], dtype=...)``.
"""

from __future__ import annotations

import ast
import json
import re
import sys

import jax
import jax.extend.core as jex_core
import jax.numpy as jnp
import numpy as np

from .._errors import BrainStateError
from ._graph import Graph, Literal, Node

__all__ = ['parse', 'IRParseError']


class IRParseError(BrainStateError):
    """The text is not the IR's text form; the message gives the line and what was expected."""


# -- types ------------------------------------------------------------------------------------

def _dtype_table() -> dict:
    """Short dtype names as printed (``f32``, ``bf16``, ``key<fry>``) -> dtypes."""
    table = {}
    names = ['bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64',
             'float16', 'bfloat16', 'float32', 'float64', 'complex64', 'complex128',
             'float8_e4m3fn', 'float8_e5m2', 'int4', 'uint4']
    for name in names:
        try:
            dtype = jnp.dtype(name)
        except TypeError:
            continue
        table[jax.core.ShapedArray((), dtype).str_short(short_dtypes=True)[:-2]] = dtype
        table[name] = dtype
    for impl in ('threefry2x32', 'rbg', 'unsafe_rbg'):
        try:
            dtype = jax.eval_shape(lambda: jax.random.key(0, impl=impl)).dtype
        except Exception:  # an implementation this JAX lacks
            continue
        table[str(dtype)] = dtype
    return table


_DTYPES: dict | None = None


def _dtypes() -> dict:
    global _DTYPES
    if _DTYPES is None:
        _DTYPES = _dtype_table()
    return _DTYPES


_TYPE = re.compile(r'^([A-Za-z0-9_<>]+)\[([0-9,]*)\]$')


def _parse_type(text: str, line: int):
    match = _TYPE.match(text)
    dtype = _dtypes().get(match.group(1)) if match else None
    if dtype is None:
        raise IRParseError(f'line {line}: {text!r} is not a type such as f32[3,4].')
    shape = tuple(int(d) for d in match.group(2).split(',') if d)
    return jax.core.ShapedArray(shape, dtype)


# -- param values -----------------------------------------------------------------------------

def _param_namespace() -> dict:
    names = {'None': None, 'True': True, 'False': False, 'nan': float('nan'),
             'inf': float('inf')}
    for name, dtype in _dtypes().items():
        names[name] = dtype
    for name in ('GatherDimensionNumbers', 'ScatterDimensionNumbers', 'ConvDimensionNumbers',
                 'GatherScatterMode', 'Precision', 'RoundingMethod', 'DotAlgorithmPreset',
                 'DotAlgorithm'):
        if hasattr(jax.lax, name):
            names[name] = getattr(jax.lax, name)
    try:  # PRNG implementations print as their tag ('fry')
        impl = jax.make_jaxpr(lambda: jax.random.key(0))().eqns[0].params['impl']
        for known in getattr(sys.modules[type(impl).__module__], 'prngs', {}).values():
            names.setdefault(str(known), known)
    except Exception:  # a JAX without typed keys in this form
        pass
    precision = getattr(jax.lax, 'Precision', None)
    if precision is not None:  # str(Precision.HIGHEST) is 'HIGHEST'
        for member in precision:
            names.setdefault(str(member), member)
    return names


_NAMESPACE: dict | None = None


def _evaluate(node, where: str):
    """Evaluate a parsed param expression over the whitelist; anything else is an error."""
    global _NAMESPACE
    if _NAMESPACE is None:
        _NAMESPACE = _param_namespace()
    names = _NAMESPACE

    def ev(n):
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.Tuple):
            return tuple(ev(e) for e in n.elts)
        if isinstance(n, ast.List):
            return [ev(e) for e in n.elts]
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            value = ev(n.operand)
            return -value if isinstance(n.op, ast.USub) else value
        if isinstance(n, ast.Name) and n.id in names:
            return names[n.id]
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and \
                n.value.id in names and isinstance(names[n.value.id], type):
            return getattr(names[n.value.id], n.attr)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and \
                isinstance(n.func.value, ast.Name) and n.func.value.id in ('np', 'numpy') and \
                isinstance(names.get(n.func.attr), np.dtype) and len(n.args) == 1:
            return names[n.func.attr].type(ev(n.args[0]))  # numpy 2's np.int64(1)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            args = [ev(a) for a in n.args]
            kwargs = {k.arg: ev(k.value) for k in n.keywords}
            if n.func.id == 'array':
                return np.asarray(args[0], dtype=kwargs.get('dtype'))
            target = names.get(n.func.id)
            if isinstance(target, type):
                return target(*args, **kwargs)
        raise IRParseError(f'{where}: cannot read {ast.unparse(n)!r} back.')

    return ev(node)


def _parse_value(text: str, where: str):
    if text == '{jaxpr}' or text.endswith('...') or text.startswith('array<'):
        raise IRParseError(
            f'{where}: the value {text!r} was printed in short form and cannot be read back; '
            f'print the graph with graph.format(exact=True) (reproducers do).')
    if text.endswith(('j', 'j)')):  # a complex number as Python prints it: (1+2j), (nan-infj)
        try:
            return complex(text)
        except ValueError:
            pass
    try:
        tree = ast.parse(text, mode='eval').body
    except SyntaxError:
        raise IRParseError(f'{where}: {text!r} is not a value this parser reads.') from None
    return _evaluate(tree, where)


# -- primitives -------------------------------------------------------------------------------

_PRIMITIVES: dict | None = None


def _primitive_table() -> dict:
    """Every JAX primitive the imported modules define, by name (jax.lax's first)."""
    table = {}
    modules = [jax.lax] + [m for name, m in sorted(sys.modules.items())
                           if m is not None and (name == 'jax' or name.startswith('jax.')
                                                 or name.startswith('brainstate'))]
    for module in modules:
        for value in list(getattr(module, '__dict__', {}).values()):
            if isinstance(value, jex_core.Primitive):
                table.setdefault(value.name, value)
    return table


def _primitive(name: str, line: int, extra: dict | None):
    global _PRIMITIVES
    if extra and name in extra:
        return extra[name]
    if _PRIMITIVES is None or name not in _PRIMITIVES:
        _PRIMITIVES = _primitive_table()  # modules imported since may define more
    prim = _PRIMITIVES.get(name)
    if prim is None:
        raise IRParseError(
            f'line {line}: no JAX primitive named {name!r} is loaded. Import the module that '
            f'defines it, or pass parse(..., primitives={{{name!r}: primitive}}).')
    return prim


_MISSING = re.compile(r"'(\w+)'")


def _complete_params(prim, avals, params: dict) -> dict:
    """Restore params the ordinary text form leaves out because they are None."""
    params = dict(params)
    for _ in range(16):
        try:
            prim.abstract_eval(*avals, **params)
            return params
        except KeyError as error:
            key = error.args[0] if error.args else None
            if not isinstance(key, str) or key in params:
                return params
            params[key] = None
        except TypeError as error:
            text = str(error)
            if 'missing' not in text:
                return params
            missing = [m for m in _MISSING.findall(text.split('missing', 1)[1])
                       if m not in params]
            if not missing:
                return params
            for key in missing:
                params[key] = None
        except Exception:
            return params
    return params


# -- lines ------------------------------------------------------------------------------------

def _split_top(text: str, sep: str = ' ') -> list[str]:
    """Split at ``sep`` outside brackets and quotes (a backslash escapes a quote within)."""
    parts, depth, quote, start, escaped = [], 0, None, 0, False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == '\\':
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in '\'"':
            quote = ch
        elif ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i + len(sep)
    parts.append(text[start:])
    return [p for p in parts if p]


def _closing(text: str, start: int) -> int:
    """The index of the bracket closing the one at ``start``."""
    depth, quote, escaped = 0, None, False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == '\\':
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in '\'"':
            quote = ch
        elif ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
            if depth == 0:
                return i
    return -1


class _Parser:
    def __init__(self, text: str, states, primitives):
        self.lines = []
        for number, raw in enumerate(text.splitlines(), 1):
            code = raw.split('    #', 1)[0].rstrip()
            stripped = code.strip()
            if stripped and not stripped.startswith('//'):
                self.lines.append((number, stripped))
        self.pos = 0
        self.env: dict[str, object] = {}
        self.states = dict(states or {})
        self.new_states: dict[str, object] = {}
        self.primitives = primitives
        self.notes: list[str] = []

    # -- helpers --

    def next(self):
        if self.pos >= len(self.lines):
            raise IRParseError('unexpected end of text: a graph or body is not closed with }.')
        item = self.lines[self.pos]
        self.pos += 1
        return item

    def typed_names(self, text: str, line: int) -> list:
        """``%3:f32[2] %4:i32[]`` -> [(name, aval)]."""
        out = []
        for token in _split_top(text.replace(', ', ' ')):
            name, sep, type_text = token.partition(':')
            if not sep or not name.startswith('%'):
                raise IRParseError(f'line {line}: expected %name:type, got {token!r}.')
            out.append((name, _parse_type(type_text, line)))
        return out

    def define(self, name: str, value, line: int):
        if name in self.env:
            raise IRParseError(f'line {line}: {name} is defined twice.')
        self.env[name] = value

    def operand(self, token: str, line: int):
        if token.startswith('%'):
            value = self.env.get(token)
            if value is None:
                raise IRParseError(f'line {line}: {token} is used before it is defined.')
            return value
        text, sep, type_text = token.rpartition(':')
        if not sep:
            raise IRParseError(f'line {line}: {token!r} is neither a %value nor a literal '
                               f'such as 1.0:f32[].')
        aval = _parse_type(type_text, line)
        value = _parse_value(text, f'line {line}')
        return Literal(np.asarray(value, dtype=aval.dtype)[()], aval)

    def params(self, text: str, line: int, op: str) -> dict:
        params = {}
        for item in _split_top(text):
            key, sep, value = item.partition('=')
            if not sep:
                raise IRParseError(f'line {line}: expected key=value in the params of {op}, '
                                   f'got {item!r}.')
            params[key] = _parse_value(value, f'line {line}, param {key} of {op}')
        return params

    def state(self, label_text: str, avals, line: int):
        text = label_text[1:]
        if text.startswith('"'):  # a quoted label (spaces, brackets or quotes in it)
            try:
                label, end = json.JSONDecoder().raw_decode(text)
            except ValueError:
                raise IRParseError(f'line {line}: the state label {label_text!r} is not closed '
                                   f'with a quote.') from None
            keys = text[end:].lstrip('{')
        else:
            label, _, keys = text.partition('{')
        state = self.states.get(label) or self.new_states.get(label)
        if state is None:
            from .._state import State
            leaves = [jnp.zeros(a.shape, a.dtype) for a in avals]
            state = State(_tree_from_keys(keys.rstrip('}'), leaves), name=label)
            self.new_states[label] = state
        return state

    # -- structure --

    def graph(self) -> Graph:
        line, header = self.next()
        match = re.match(r'^graph (.*)\((.*)\) \{$', header)
        if not match:
            raise IRParseError(f'line {line}: expected "graph name(%0:f32[3], ...) {{", got '
                               f'{header!r}.')
        graph = Graph(match.group(1))
        for name, aval in self.typed_names(match.group(2), line):
            self.define(name, graph.add_input(aval), line)
        self.body(graph)
        if self.pos != len(self.lines):
            line, text = self.lines[self.pos]
            raise IRParseError(f'line {line}: text after the graph\'s closing brace: {text!r}.')
        return graph

    def body(self, graph: Graph):
        while True:
            line, text = self.next()
            if text == '}':
                if graph.output_node is None:
                    graph.set_outputs([])
                return
            if text == 'return' or text.startswith('return '):
                graph.set_outputs([self.operand(t, line) for t in _split_top(text[6:])])
                continue
            self.node(graph, line, text)

    def node(self, graph: Graph, line: int, text: str):
        outs, eq, rhs = text.partition(' = ')
        if not eq or not outs.startswith('%'):
            outs, rhs = '', text
        results = self.typed_names(outs, line) if outs else []
        avals = [a for _, a in results]
        opens_region = rhs.endswith(' {')
        if opens_region:
            rhs = rhs[:-2]
        head = re.match(r'^([A-Za-z_][\w.\-]*)', rhs)
        if not head:
            raise IRParseError(f'line {line}: expected an operation, got {rhs!r}.')
        op = head.group(1)
        rest = rhs[head.end():]
        params = {}
        if rest.startswith('['):
            end = _closing(rest, 0)
            if end < 0:
                raise IRParseError(f'line {line}: the params of {op} are not closed with ].')
            params = self.params(rest[1:end], line, op)
            rest = rest[end + 1:]
        tokens = _split_top(rest.strip())
        if op == 'constant':
            value_text = rest.strip()
            if value_text.startswith('array<') and len(avals) == 1:
                # The ordinary form does not print a constant's contents: zeros stand in.
                value = np.zeros(avals[0].shape, avals[0].dtype)
                self.notes.append(f'line {line}: the constant {outs} is read as zeros (its '
                                  f'contents were not printed).')
            else:
                value = _parse_value(value_text, f'line {line}, constant')
            node = graph.create_node('constant', output_avals=avals, params={'value': value})
        elif op in ('state_read', 'state_write'):
            if not tokens or not tokens[0].startswith('@'):
                raise IRParseError(f'line {line}: {op} needs a state, such as @Net.w.')
            inputs = [self.operand(t, line) for t in tokens[1:]]
            state = self.state(tokens[0], avals or [v.aval for v in inputs], line)
            node = graph.create_node(op, state=state, inputs=inputs, output_avals=avals)
        elif opens_region:
            inputs = [self.operand(t, line) for t in tokens]
            bodies = []
            while True:
                body_line, body_text = self.next()
                if body_text == '}':
                    break
                match = re.match(r'^(.*)\((.*)\) \{$', body_text)
                if not match:
                    raise IRParseError(f'line {body_line}: expected a body "name(%1:f32[]) {{", '
                                       f'got {body_text!r}.')
                body = Graph(match.group(1))
                for name, aval in self.typed_names(match.group(2), body_line):
                    self.define(name, body.add_input(aval), body_line)
                self.body(body)
                bodies.append(body)
            node = graph.create_node('region', op=op, inputs=inputs, output_avals=avals,
                                     params=params, subgraphs=bodies)
        else:
            prim = _primitive(op, line, self.primitives)
            inputs = [self.operand(t, line) for t in tokens]
            params = _complete_params(prim, [v.aval for v in inputs], params)
            node = graph.create_node('primitive', op=prim, inputs=inputs, output_avals=avals,
                                     params=params, extra={'effects': frozenset()})
        for (name, _), value in zip(results, node.outputs):
            self.define(name, value, line)


def _tree_from_keys(keys: str, leaves: list):
    """A pytree with ``leaves`` at the printed key paths (``['a'] ['b'][0]``); one leaf with
    no keys is the leaf itself."""
    paths = keys.split() if keys else []
    if not paths:
        return leaves[0] if len(leaves) == 1 else list(leaves)
    root: dict = {}
    for path, leaf in zip(paths, leaves):
        parts = re.findall(r"\['([^']*)'\]|\[(\d+)\]|\.(\w+)", path)
        node = root
        keys_ = [k or (int(i) if i else a) for k, i, a in parts]
        for key in keys_[:-1]:
            node = node.setdefault(key, {})
        node[keys_[-1]] = leaf
    return _lists(root)


def _lists(tree):
    """Dicts keyed 0..n-1 become lists (a printed ``[0]`` is a sequence index)."""
    if not isinstance(tree, dict):
        return tree
    items = {k: _lists(v) for k, v in tree.items()}
    if items and all(isinstance(k, int) for k in items) and \
            sorted(items) == list(range(len(items))):
        return [items[i] for i in range(len(items))]
    return items


def parse(text: str, states=None, primitives: dict | None = None) -> Graph:
    """Read the IR's text form (``print(graph)``, ``graph.format(exact=True)``, a reproducer
    file's contents) back into a :class:`Graph`.

    Args:
      text: the text; ``//`` lines (a reproducer's header) and ``# ...`` comments are skipped.
      states: ``{label: State}`` for the states the text names (``@Net.w``; a print keeps two
        States of one label apart as ``@Net.V`` and ``@Net.V#2``: take the mapping from
        :func:`brainstate.ir.state_labels`). A state not given
        becomes a new placeholder :class:`~brainstate.State` holding zeros of the printed types
        (enough to run passes, verify and lower; ``graph.meta['parsed_states']`` lists them).
      primitives: ``{name: Primitive}`` for primitives of modules not imported.

    A constant printed in short form (``array<float32[3]>``) is read as zeros, with a note in
    ``graph.meta['parse_notes']``.

    Returns the graph (verify it with ``graph.verify()``). Raises :class:`IRParseError` naming
    the line at fault.

    Example::

        text = graph.format(exact=True)
        again = brainstate.ir.parse(text, states=brainstate.ir.state_labels(graph))
        assert again.format(exact=True) == text
    """
    parser = _Parser(text, states, primitives)
    graph = parser.graph()
    graph.meta['parsed_states'] = dict(parser.new_states)
    if parser.notes:
        graph.meta['parse_notes'] = parser.notes
    return graph
