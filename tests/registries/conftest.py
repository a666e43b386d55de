"""Fakes of the cloud registries, each in front of a real distribution registry."""

from __future__ import annotations

import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import environment
from tests.fakes import clouds
from tests.fakes.artifact_registry import ArtifactRegistryServer
from tests.fakes.clouds import service_account_key
from tests.fakes.distribution import Distribution, free_port


@pytest.fixture(scope="module")
def backing(tmp_path_factory):
    """The registry standing in for <location>-docker.pkg.dev (the fake starts it)."""
    return Distribution(tmp_path_factory.mktemp("ar-data"))


@pytest.fixture(scope="module")
def fake(backing):
    """Artifact Registry's API and token service, with the registry behind it."""
    server = ArtifactRegistryServer(backing).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory, fake):
    """A service-account key whose token_uri is the fake's OAuth2 endpoint."""
    return str(service_account_key(tmp_path_factory.mktemp("gcp"), fake))


@pytest.fixture(scope="module")
def gcp(fake, backing, key_file):
    """Everything an Artifact Registry adapter needs to reach the fake."""
    return {"fake": fake, "backing": backing, "key_file": key_file}


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """moto's ECR and IAM server, with a distribution registry standing in for ECR's."""
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    # ECR's registry takes only the login GetAuthorizationToken hands out (moto's is
    # AWS:<account>-auth-token); an anonymous push is refused.
    root = tmp_path_factory.mktemp("ecr-data")
    data = Distribution(root, basic_auth=clouds.MOTO_ECR_LOGIN).start()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with environment(env):
        yield {"endpoint": f"http://127.0.0.1:{port}", "backing": data, "env": env}
    data.stop()
    moto.stop()


@pytest.fixture(scope="module")
def azure(tmp_path_factory):
    """The ACR fake (ARM, token service, /acr/v1) and its token-auth registry."""
    server = clouds.acr_server(tmp_path_factory.mktemp("acr")).start()
    yield server
    server.stop()
