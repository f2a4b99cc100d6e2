"""Distributed runs: roles and ranks, the environment each framework reads, rendezvous.

Backends use :func:`task_slots`, :func:`total_resources`, :func:`endpoint_labels`
and :func:`plan_task`; the local backend finds addresses with :func:`local_endpoints`,
a backend that knows its node list supplies them itself. User code may call
:func:`xgboost_args` and :func:`jax_initialize`. ``docs/distributed.md`` lists the
variables per framework.
"""

from runyard.launch._frameworks import (
    FRAMEWORKS,
    RoleRequest,
    RoleRule,
    TaskResources,
    distributed_launch,
    replicas_of,
    roles_of,
)
from runyard.launch._plan import (
    Endpoint,
    TaskPlan,
    endpoint_labels,
    local_endpoints,
    plan_task,
    service_labels,
    task_resources,
    task_slots,
    tf_config,
    total_resources,
)
from runyard.launch._rendezvous import (
    publish_endpoint,
    server_endpoints,
    wait_endpoints,
    wait_others_succeeded,
)
from runyard.launch._user import jax_initialize, xgboost_args

__all__ = [
    "FRAMEWORKS",
    "Endpoint",
    "RoleRequest",
    "RoleRule",
    "TaskPlan",
    "TaskResources",
    "distributed_launch",
    "endpoint_labels",
    "jax_initialize",
    "local_endpoints",
    "plan_task",
    "publish_endpoint",
    "replicas_of",
    "roles_of",
    "server_endpoints",
    "service_labels",
    "task_resources",
    "task_slots",
    "tf_config",
    "total_resources",
    "wait_endpoints",
    "wait_others_succeeded",
    "xgboost_args",
]
