"""Mixins and small type utilities shared by models: parameter descriptions (``ParamDesc``),
intersection and union types (``JointTypes``, ``OneOfTypes``) and computing modes (``Mode``,
``Training``, ``Batching``, ``JointMode``).

Example::

    class Net(brainstate.mixin.ParamDesc):
        def __init__(self, size, lr=0.01): ...

    make = Net.desc(size=100)          # a deferred constructor
    net = make(lr=0.1)                 # Net(size=100, lr=0.1)

    mode = brainstate.mixin.JointMode(brainstate.mixin.Training(),
                                      brainstate.mixin.Batching(batch_size=32))
    mode.has(brainstate.mixin.Training), mode.batch_size     # True, 32
"""


from typing import Any, TypeVar, Union, _GenericAlias

__all__ = [
    'Mixin', 'ParamDesc', 'ParamDescriber', 'HashableDict', 'hashable', 'not_implemented',
    'is_not_implemented', 'JointTypes', 'OneOfTypes', '_JointGenericAlias', '_OneOfGenericAlias',
    'Mode', 'JointMode', 'Batching', 'Training',
]

T = TypeVar('T')


def hashable(x) -> bool:
    """Whether ``hash(x)`` succeeds."""
    try:
        hash(x)
    except TypeError:
        return False
    return True


class Mixin:
    """Base of the mixin classes: a marker, with no state and no behaviour of its own."""


class HashableDict(dict):
    """A dict usable as a dictionary key: unhashable values are replaced by their ``str``, and
    the hash does not depend on insertion order (nor on the keys being mutually orderable)."""

    def __init__(self, the_dict: dict):
        super().__init__({k: (v if hashable(v) else str(v)) for k, v in the_dict.items()})

    def __hash__(self):
        return hash(frozenset(self.items()))


class NoSubclassMeta(type):
    """A metaclass whose classes cannot be subclassed."""

    def __new__(mcs, name, bases, namespace):
        for base in bases:
            if isinstance(base, NoSubclassMeta):
                raise TypeError(f"type '{base.__name__}' is not an acceptable base type")
        return super().__new__(mcs, name, bases, dict(namespace))


class ParamDescriber(metaclass=NoSubclassMeta):
    """A deferred constructor: ``cls`` with some arguments fixed.

    Calling it (or :meth:`init`) builds ``cls(*args, *more_args, **{**kwargs, **more_kwargs})``.
    ``ParamDescriber[cls]`` describes ``cls`` with no arguments. ``isinstance(d, describer)``
    holds when ``d`` is a describer of a subclass of ``describer.cls``.
    """

    def __init__(self, cls: type, *desc_tuple, **desc_dict):
        self.cls = cls
        self.args = desc_tuple
        self.kwargs = desc_dict
        self._identifier = (cls, tuple(desc_tuple), HashableDict(desc_dict))

    def __call__(self, *args, **kwargs):
        return self.cls(*self.args, *args, **{**self.kwargs, **kwargs})

    def init(self, *args, **kwargs):
        """Same as calling the describer."""
        return self(*args, **kwargs)

    def __instancecheck__(self, instance):
        return isinstance(instance, ParamDescriber) and issubclass(instance.cls, self.cls)

    def __class_getitem__(cls, item: type):
        return ParamDescriber(item)

    @property
    def identifier(self):
        """``(cls, args, HashableDict(kwargs))``: a hashable key for the description."""
        return self._identifier

    @identifier.setter
    def identifier(self, value: Any):
        raise AttributeError('Cannot set the identifier of a ParamDescriber.')

    def __repr__(self):
        parts = [repr(a) for a in self.args] + [f'{k}={v!r}' for k, v in self.kwargs.items()]
        return f'ParamDescriber({self.cls.__name__}({", ".join(parts)}))'


class ParamDesc(Mixin):
    """Gives a class ``Cls.desc(*args, **kwargs)``: a :class:`ParamDescriber` that builds
    instances later with those arguments."""

    non_hashable_params = None

    @classmethod
    def desc(cls, *args, **kwargs) -> ParamDescriber:
        """A deferred constructor of this class with the given arguments."""
        return ParamDescriber(cls, *args, **kwargs)


def not_implemented(func):
    """Mark ``func`` as not implemented: calling it raises ``NotImplementedError``."""

    def wrapper(*args, **kwargs):
        raise NotImplementedError(f'{func.__name__} is not implemented.')

    wrapper.__name__ = getattr(func, '__name__', 'wrapper')
    wrapper.__qualname__ = getattr(func, '__qualname__', wrapper.__name__)
    wrapper.__doc__ = func.__doc__
    wrapper.not_implemented = True
    return wrapper


def is_not_implemented(fn) -> bool:
    """Whether ``fn`` was marked with :func:`not_implemented`."""
    return hasattr(fn, 'not_implemented')


def _type_name(t) -> str:
    if hasattr(t, '__module__') and hasattr(t, '__name__'):
        return f'{t.__module__}.{t.__name__}'
    return str(t)


class _TypeSetAlias(_GenericAlias, _root=True):
    """A typing alias over a set of types: equal and hashed regardless of order."""
    _label = ''

    def __eq__(self, other):
        if not isinstance(other, type(self)):
            return NotImplemented
        return set(self.__args__) == set(other.__args__)

    def __hash__(self):
        return hash(frozenset(self.__args__))

    def __repr__(self):
        return f'{self._label}[{", ".join(_type_name(a) for a in self.__args__)}]'

    def __reduce__(self):
        return type(self), (self.__origin__, self.__args__)

    def __call__(self, *args, **kwargs):
        raise TypeError(f'Cannot instantiate {self!r}: it is a type for isinstance/issubclass '
                        f'checks and annotations. Instantiate one of its classes instead.')


class _JointGenericAlias(_TypeSetAlias, _root=True):
    """An intersection type: instances of every one of the types."""
    _label = 'JointTypes'

    def __instancecheck__(self, obj):
        return all(isinstance(obj, cls) for cls in self.__args__)

    def __subclasscheck__(self, subclass):
        return all(issubclass(subclass, cls) for cls in self.__args__)


class _OneOfGenericAlias(_TypeSetAlias, _root=True):
    """A union type: instances of at least one of the types."""
    _label = 'OneOfTypes'

    def __instancecheck__(self, obj):
        return any(isinstance(obj, cls) for cls in self.__args__)

    def __subclasscheck__(self, subclass):
        return any(issubclass(subclass, cls) for cls in self.__args__)


def _unique(types, what):
    if not types:
        raise TypeError(f'Cannot create a {what} of no types.')
    return tuple(dict.fromkeys(types))


class _JointTypesClass:
    """``JointTypes(A, B)`` or ``JointTypes[A, B]``: the type of objects that are instances of
    both ``A`` and ``B``. With a single (distinct) type, that type itself."""

    def __call__(self, *types):
        types = _unique(types, 'JointTypes')
        return types[0] if len(types) == 1 else _JointGenericAlias(object, types)

    def __getitem__(self, item):
        return self(*(item if isinstance(item, tuple) else (item,)))

    def __repr__(self):
        return 'JointTypes'


class _OneOfTypesClass:
    """``OneOfTypes(A, B)`` or ``OneOfTypes[A, B]``: the type of objects that are instances of
    ``A`` or of ``B``. With a single (distinct) type, that type itself."""

    def __call__(self, *types):
        types = _unique(types, 'OneOfTypes')
        return types[0] if len(types) == 1 else _OneOfGenericAlias(Union, types)

    def __getitem__(self, item):
        return self(*(item if isinstance(item, tuple) else (item,)))

    def __repr__(self):
        return 'OneOfTypes'


JointTypes = _JointTypesClass()
OneOfTypes = _OneOfTypesClass()


class Mode(Mixin):
    """A computing mode, e.g. :class:`Training` or :class:`Batching`. Modes of the same class
    are equal (and hash equal)."""

    def __repr__(self):
        return self.__class__.__name__

    def __eq__(self, other):
        if not isinstance(other, Mode):
            return NotImplemented
        return other.__class__ == self.__class__

    def __hash__(self):
        return hash(self.__class__)

    def is_a(self, mode: type) -> bool:
        """Whether this mode is exactly of class ``mode``."""
        assert isinstance(mode, type), 'Must be a type.'
        return self.__class__ == mode

    def has(self, mode: type) -> bool:
        """Whether this mode is (or includes) a ``mode``."""
        assert isinstance(mode, type), 'Must be a type.'
        return isinstance(self, mode)


class JointMode(Mode):
    """Several modes at once, e.g. ``JointMode(Training(), Batching(32))``. Attributes of the
    member modes are readable on it (``joint.batch_size``)."""

    def __init__(self, *modes: Mode):
        for mode in modes:
            if not isinstance(mode, Mode):
                raise TypeError(f'The supported type must be a tuple/list of Mode. But we got '
                                f'{mode!r}.')
        self.modes = tuple(modes)
        self.types = {type(m) for m in modes}

    def __repr__(self):
        return f'{type(self).__name__}({", ".join(repr(m) for m in self.modes)})'

    def __eq__(self, other):
        if not isinstance(other, JointMode):
            return NotImplemented
        return self.types == other.types

    def __hash__(self):
        return hash(frozenset(self.types))

    def has(self, mode: type) -> bool:
        """Whether one of the member modes is a ``mode``."""
        assert isinstance(mode, type), 'Must be a type.'
        return any(issubclass(cls, mode) for cls in self.types)

    def is_a(self, cls) -> bool:
        """Whether the member modes are exactly ``cls`` (a mode class or a ``JointTypes``)."""
        return JointTypes(*self.types) == cls

    def __getattr__(self, item):
        if item in ('modes', 'types'):
            raise AttributeError(item)
        for mode in self.__dict__.get('modes', ()):
            if hasattr(mode, item):
                return getattr(mode, item)
        raise AttributeError(f'{type(self).__name__} has no attribute {item!r} (nor has any of '
                             f'its modes)')


class Batching(Mode):
    """Batched computation: ``batch_size`` samples along axis ``batch_axis``."""

    def __init__(self, batch_size: int = 1, batch_axis: int = 0):
        self.batch_size = batch_size
        self.batch_axis = batch_axis

    def __repr__(self):
        return f'{type(self).__name__}(in_size={self.batch_size}, axis={self.batch_axis})'


class Training(Mode):
    """Training computation (e.g. dropout active)."""
