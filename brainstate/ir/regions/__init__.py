"""Region kinds: the layout and the rules of each kind of loop or branch, one file per kind.

* :mod:`._scan` ``scan`` (``for_loop``, ``scan``): consts, carries, xs -> carries, ys;
* :mod:`._while` ``while`` (``while_loop``): cond consts, body consts, carries -> carries;
* :mod:`._cond` ``cond`` (``cond``, ``switch``, ``ifelse``): index, args -> results;
* :mod:`._checkpoint` ``checkpoint`` (``checkpoint``, ``remat``): args -> results.

``region_kind(node)`` gives the kind of a region node; ``kind.signature(node)`` its named
layout (:class:`RegionSignature`: operand, result and body groups, the carries, and which
operand feeds which body input and which body output gives which result). The kind's
``verify``, ``lower``, ``hoist``, ``batching`` and ``dce`` rules are what the verifier, lowering,
the hoist-states pass, vmap's batching analysis and the dce pass call; ``insert_operand``,
``remove_operand``, ``remove_result`` and ``remove_carry`` edit a region without breaking its
layout. docs/ir.md
describes each kind's signature.
"""

from ._kind import (Carry, BodySignature, REGION_KINDS, RegionKind, RegionSignature,
                    region_kind, register_region_kind)
from ._edit import (insert_region_operand, live_body_inputs, remove_region_carry, remove_region_operand,
                    remove_region_result)
from ._hoisting import (BodyStates, HoistScope, add_state_input, flat_values, hoist_body,
                        order_inputs, replace_region, set_results, state_avals)
from ._scan import SCAN, ScanKind
from ._while import WHILE, WhileKind
from ._cond import COND, CondKind
from ._checkpoint import CHECKPOINT, CheckpointKind

__all__ = [
    'RegionKind', 'RegionSignature', 'BodySignature', 'Carry', 'REGION_KINDS', 'region_kind',
    'register_region_kind', 'insert_region_operand', 'remove_region_operand', 'remove_region_result',
    'remove_region_carry', 'live_body_inputs',
    'ScanKind', 'WhileKind', 'CondKind', 'CheckpointKind', 'SCAN', 'WHILE', 'COND', 'CHECKPOINT',
    'HoistScope', 'BodyStates', 'hoist_body', 'add_state_input', 'order_inputs',
    'replace_region', 'flat_values', 'state_avals', 'set_results',
]
