"""The exceptions brainstate raises.

Every error derives from :class:`BrainStateError`, so ``except brainstate.BrainStateError`` catches
all of them. Each message names the state (by its path in the module tree, or its name) or the
argument at fault and says what to do instead.
"""

__all__ = [
    'BrainStateError',
    'StateValueError',
    'TracerLeakError',
    'TraceContextError',
    'StateArgumentError',
    'BatchAxisError',
    'GradientError',
    'ArgumentValueError',
    'ArgumentTypeError',
]


class BrainStateError(Exception):
    """Base class of every error raised by brainstate."""


class StateValueError(BrainStateError, ValueError):
    """A state was given a value whose tree structure, shape or dtype it cannot hold."""


class TraceContextError(BrainStateError):
    """A State was used in the wrong trace context: a JAX tracer written into it outside any
    brainstate transform, or a state created inside a traced function (under a raw JAX
    transform, or in a trace that did not complete) read where it has no value (the message
    says where the state was created)."""


class TracerLeakError(TraceContextError):
    """A JAX tracer was about to be stored in a State outside any brainstate transform.

    This is the common first mistake: stateful code run under raw ``jax.jit`` or ``jax.vmap``.
    """


class StateArgumentError(BrainStateError, TypeError, ValueError):
    """A State object was passed into, or returned from, a transformed function."""


class BatchAxisError(BrainStateError, ValueError):
    """A batched value was written into a state that ``vmap`` treats as shared."""


class GradientError(BrainStateError, ValueError):
    """A gradient transform was misused: a grad state the function never reads, a non-scalar
    output to ``grad``, an integer-valued grad state, an ``argnums`` out of range."""


class ArgumentValueError(BrainStateError, ValueError):
    """A transform, optimizer or sampler was given an argument it cannot use: loop inputs or
    mapped axes of different lengths, an empty list of branches, a negative size, ..."""


class ArgumentTypeError(BrainStateError, TypeError):
    """A transform, optimizer or sampler was given an argument of the wrong kind (a branch that
    is not callable, a non-integer ``argnums``), or a loop carry or branch result changed its
    type."""


BatchAxisError.__module__ = 'brainstate.transform'
