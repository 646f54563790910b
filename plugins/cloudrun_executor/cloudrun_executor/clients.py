"""Create the Google API clients a Cloud Run host needs, with credentials from Google's auth chain."""

from __future__ import annotations

import threading

import attrs
import google.auth
import grpc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import Credentials
from google.cloud import run_v2
from google.cloud.logging_v2.services.logging_service_v2 import LoggingServiceV2Client
from google.cloud.logging_v2.services.logging_service_v2.transports import LoggingServiceV2GrpcTransport
from google.cloud.run_v2.services.executions.transports import ExecutionsGrpcTransport
from google.cloud.run_v2.services.jobs.transports import JobsGrpcTransport
from google.cloud.run_v2.services.tasks.transports import TasksGrpcTransport

from cloudrun_executor.config import CloudRunConfig, ConfigError

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


@attrs.frozen
class CloudRunClients:
    """The Cloud Run Admin API v2 clients and the Cloud Logging client for one host."""

    jobs: run_v2.JobsClient
    executions: run_v2.ExecutionsClient
    tasks: run_v2.TasksClient
    logging: LoggingServiceV2Client


def make_clients(config: CloudRunConfig) -> CloudRunClients:
    """Return new clients for ``config``.

    Raises:
        google.auth.exceptions.DefaultCredentialsError: no credentials in Google's auth chain.
    """
    if config.anonymous:
        return _local_clients(config)
    credentials, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    return _google_clients(config, credentials)


def _google_clients(config: CloudRunConfig, credentials: Credentials) -> CloudRunClients:
    run_options = ClientOptions(api_endpoint=config.api_endpoint) if config.api_endpoint else None
    logging_options = ClientOptions(api_endpoint=config.logging_endpoint) if config.logging_endpoint else None
    # gRPC explicitly: it is what the fake server speaks, so what the tests prove is what runs.
    return CloudRunClients(
        jobs=run_v2.JobsClient(credentials=credentials, client_options=run_options, transport="grpc"),
        executions=run_v2.ExecutionsClient(
            credentials=credentials, client_options=run_options, transport="grpc"
        ),
        tasks=run_v2.TasksClient(credentials=credentials, client_options=run_options, transport="grpc"),
        logging=LoggingServiceV2Client(
            credentials=credentials, client_options=logging_options, transport="grpc"
        ),
    )


def _local_clients(config: CloudRunConfig) -> CloudRunClients:
    # Anonymous means no identity at all, and the configuration allows it only on a loopback
    # endpoint (a fake or emulator), so the channel is plaintext: there is no secret to protect and
    # no certificate a local fake could present. A transport given a channel sends no credentials.
    if config.api_endpoint is None:
        raise ConfigError("Anonymous credentials need an api_endpoint on the loopback interface.")
    run_channel = grpc.insecure_channel(config.api_endpoint)
    logging_endpoint = config.logging_endpoint or config.api_endpoint
    log_channel = (
        run_channel if logging_endpoint == config.api_endpoint else grpc.insecure_channel(logging_endpoint)
    )
    return CloudRunClients(
        jobs=run_v2.JobsClient(transport=JobsGrpcTransport(channel=run_channel)),
        executions=run_v2.ExecutionsClient(transport=ExecutionsGrpcTransport(channel=run_channel)),
        tasks=run_v2.TasksClient(transport=TasksGrpcTransport(channel=run_channel)),
        logging=LoggingServiceV2Client(transport=LoggingServiceV2GrpcTransport(channel=log_channel)),
    )


class ClientCache:
    """Keep one set of clients per host configuration, since channels are costly to open."""

    def __init__(self) -> None:
        self._clients: dict[CloudRunConfig, CloudRunClients] = {}
        self._lock = threading.Lock()

    def get(self, config: CloudRunConfig) -> CloudRunClients:
        """Return the clients for ``config``, creating them on first use."""
        with self._lock:
            clients = self._clients.get(config)
            if clients is None:
                clients = self._clients[config] = make_clients(config)
            return clients
