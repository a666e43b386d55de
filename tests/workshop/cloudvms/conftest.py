"""The three clouds' fakes, one server each per test module that uses them: the provider
tests (test_aws.py, test_gcp.py, test_azure.py) and the contract all three must keep
(test_contract.py)."""

from __future__ import annotations

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import environment
from tests.fakes.azure_arm import AzureArmServer
from tests.fakes.distribution import free_port
from tests.fakes.ec2 import CapacityProxy, ServiceQuotasServer
from tests.fakes.gce import GceServer
from tests.workshop.cloudvms.values import (
    AWS_G_QUOTA,
    AWS_PLENTY,
    AWS_REGION,
    AZURE_FAMILY,
    AZURE_LOCATION,
    AZURE_PLENTY,
    GCP_PLENTY,
    KEY,
)


@pytest.fixture(scope="module")
def aws_clouds(tmp_path_factory):
    """moto's EC2 behind the capacity proxy, and a Service Quotas server."""
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    proxy = CapacityProxy(f"http://127.0.0.1:{port}").start()
    quotas = ServiceQuotasServer().start()
    quotas.applied[AWS_G_QUOTA] = AWS_PLENTY
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_AWS_REGION": AWS_REGION,
        "AWS_ENDPOINT_URL_EC2": proxy.url,
        "AWS_ENDPOINT_URL_SSM": f"http://127.0.0.1:{port}",
        "AWS_ENDPOINT_URL_SERVICE_QUOTAS": quotas.url,
    }
    directory = tmp_path_factory.mktemp("cloud")
    (directory / "admin.pub").write_text(KEY)
    with environment(env):
        ec2 = boto3.client("ec2", region_name=AWS_REGION)
        image = ec2.describe_images(Owners=["099720109477"])["Images"][0]["ImageId"]
        yield {
            "ec2": ec2,
            "proxy": proxy,
            "quotas": quotas,
            "image": image,
            "dir": directory,
            "env": env,
        }
    proxy.stop()
    quotas.stop()
    moto.stop()


@pytest.fixture(scope="module")
def gcp_clouds(tmp_path_factory):
    """The Compute Engine fake, and a service-account key for it."""
    fake = GceServer().start()
    fake.limits.update(GCP_PLENTY)
    fake.gpus_all_regions = 1024.0
    fake.cpus_all_regions = 65536.0
    directory = tmp_path_factory.mktemp("gcp")
    (directory / "admin.pub").write_text(KEY)
    env = {
        "GOOGLE_APPLICATION_CREDENTIALS": str(fake.service_account_key(directory)),
        "WORKSHOP_GCP_ENDPOINT": fake.endpoint,
    }
    with environment(env):
        yield {"fake": fake, "dir": directory, "env": env}
    fake.stop()


@pytest.fixture(scope="module")
def azure_arm(tmp_path_factory):
    """The Resource Manager fake (HTTPS, its own CA, Entra ID tokens)."""
    directory = tmp_path_factory.mktemp("azure")
    (directory / "admin.pub").write_text(KEY)
    server = AzureArmServer(directory).start()
    server.limits[AZURE_LOCATION] = {AZURE_FAMILY: AZURE_PLENTY, "cores": AZURE_PLENTY}
    server.dir = directory  # type: ignore[attr-defined]
    yield server
    server.stop()
