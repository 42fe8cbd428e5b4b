terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.95"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }

  # State stays local by default. For a team, use a remote backend, e.g.
  #   terraform init -backend-config=backend.hcl
  # with an `s3` backend block added here (see docs/deploy.md).
}
