"""brainstate.mixin (modes, parameter descriptions, type sets) and brainstate.typing."""

import pickle

import pytest

from brainstate import mixin
from brainstate.typing import Array, Key, Missing, PyTree


def test_param_describer_defers_construction():
    class Net(mixin.ParamDesc):
        def __init__(self, size, lr=0.01):
            self.size, self.lr = size, lr

    describe = Net.desc(10, lr=0.5)
    assert isinstance(describe, mixin.ParamDescriber)
    net = describe(lr=0.1)
    assert (net.size, net.lr) == (10, 0.1)
    assert describe.identifier[0] is Net
    with pytest.raises(AttributeError):
        describe.identifier = 1
    with pytest.raises(TypeError):
        class Sub(mixin.ParamDescriber):
            pass


def test_joint_and_one_of_types():
    class A: ...
    class B: ...
    class AB(A, B): ...

    both, either = mixin.JointTypes(A, B), mixin.OneOfTypes[A, B]
    assert isinstance(AB(), both) and not isinstance(A(), both)
    assert isinstance(A(), either) and not isinstance(1, either)
    assert both == mixin.JointTypes[B, A] and hash(both) == hash(mixin.JointTypes(B, A))
    assert mixin.JointTypes(A, A) is A
    assert pickle.loads(pickle.dumps(mixin.OneOfTypes[int, str])) == mixin.OneOfTypes[str, int]
    with pytest.raises(TypeError):
        mixin.JointTypes()
    with pytest.raises(TypeError):
        both()


def test_modes():
    training, batching = mixin.Training(), mixin.Batching(batch_size=8)
    assert training == mixin.Training() and len({training, mixin.Training()}) == 1
    assert training.is_a(mixin.Training) and not training.has(mixin.Batching)
    joint = mixin.JointMode(training, batching)
    assert joint.has(mixin.Training) and joint.has(mixin.Batching) and joint.batch_size == 8
    assert joint.is_a(mixin.JointTypes(mixin.Training, mixin.Batching))
    with pytest.raises(AttributeError):
        joint.missing
    with pytest.raises(TypeError):
        mixin.JointMode('train')


def test_hashable_dict_and_not_implemented():
    assert hash(mixin.HashableDict({1: [1], 'x': 2})) == hash(mixin.HashableDict({'x': 2, 1: [1]}))

    @mixin.not_implemented
    def todo():
        pass

    assert mixin.is_not_implemented(todo)
    with pytest.raises(NotImplementedError, match='todo'):
        todo()


def test_typing_annotations():
    assert isinstance('w', Key) and isinstance(3, Key)
    assert PyTree[int, ' S  T '] is PyTree[int, 'S T']
    assert PyTree[float].leaftype is float
    for bad in ('', '...', 'a-b', 'S ... T'):
        with pytest.raises(ValueError):
            PyTree[int, bad]
    with pytest.raises(TypeError, match='hashable'):
        PyTree[[int]]
    with pytest.raises(RuntimeError):
        PyTree()
    assert hasattr(Array['batch, n'], '__origin__')
    assert Missing() is not Missing()
