# PixTools on AWS: network, EKS (general + GPU spot node groups), RDS
# PostgreSQL, S3 for blobs and model weights, Amazon MQ for RabbitMQ, and the
# IAM roles the pods assume through IRSA. One file per concern.

data "aws_availability_zones" "available" {
  state = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

data "aws_caller_identity" "current" {}

locals {
  name = "${var.project}-${var.environment}"
  azs  = slice(data.aws_availability_zones.available.names, 0, 3)

  # Bucket names are global: the account id keeps them unique.
  blobs_bucket_name  = "${local.name}-blobs-${data.aws_caller_identity.current.account_id}"
  models_bucket_name = "${local.name}-models-${data.aws_caller_identity.current.account_id}"

  # Kubernetes side: must match deploy/k8s (namespace, service account, node labels and taints).
  k8s_namespace       = "pixtools"
  k8s_service_account = "pixtools"
  pool_label_key      = "pixtools.io/pool"

  tags = merge(var.tags, {
    Project     = var.project
    Environment = var.environment
    ManagedBy   = "terraform"
  })
}
