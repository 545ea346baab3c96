"""A faithful, small Kubernetes API server for tests and the local lab.

No kube-apiserver can be installed on the project's machines, so this one implements the part of
the API the project uses, with the semantics clients depend on: resourceVersions, watch with
bookmarks and 410 on expired versions, 409 on stale updates, the status subresource, selectors,
the PATCH formats, discovery for kubectl — plus fault switches. See docs/apiserver.md.
"""

from metallb_lab.apiserver.errors import ApiError
from metallb_lab.apiserver.resources import (
    DEFAULT_RESOURCES,
    LEGACY_RESOURCES,
    MONITORING_RESOURCES,
    ResourceType,
)
from metallb_lab.apiserver.server import ApiServer, RequestRecord
from metallb_lab.apiserver.services import ClusterConfig

__all__ = [
    "DEFAULT_RESOURCES",
    "LEGACY_RESOURCES",
    "MONITORING_RESOURCES",
    "ApiError",
    "ApiServer",
    "ClusterConfig",
    "RequestRecord",
    "ResourceType",
]
