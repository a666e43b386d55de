"""What the cloud fakes are set up with, shared by the fixtures (conftest.py) and the tests."""

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK6Q7BR7UqrYNZLSHWTzYtsv/o29zMRYlECOE28BG/4p admin@x\n"

AWS_REGION = "us-east-1"
AWS_G_QUOTA = "L-DB2E81BA"
AWS_PLENTY = 4096.0  # the tests' G quota, unless a test sets one next to what already runs

GCP_PLENTY = {
    "CPUS": 4096.0,
    "G2_CPUS": 4096.0,
    "N2_CPUS": 4096.0,
    "C3_CPUS": 4096.0,
    "N4_CPUS": 4096.0,
    "NVIDIA_T4_GPUS": 1024.0,
    "NVIDIA_L4_GPUS": 1024.0,
    "IN_USE_ADDRESSES": 4096.0,
    "SSD_TOTAL_GB": 409600.0,
}

AZURE_LOCATION = "eastus"
AZURE_FAMILY = "standardNCASv3_T4Family"
AZURE_PLENTY = 4096.0
