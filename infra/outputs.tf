output "aws_region" {
  description = "Region of every resource (PIXTOOLS_S3_REGION)."
  value       = var.aws_region
}

output "cluster_name" {
  description = "EKS cluster name, for `aws eks update-kubeconfig --name`."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = module.eks.cluster_endpoint
}

output "workload_role_arn" {
  description = "IAM role for the `pixtools` service account (annotation eks.amazonaws.com/role-arn)."
  value       = module.workload_irsa.iam_role_arn
}

output "cluster_autoscaler_role_arn" {
  description = "IAM role for the Cluster Autoscaler's `kube-system/cluster-autoscaler` service account."
  value       = module.cluster_autoscaler_irsa.iam_role_arn
}

output "blobs_bucket" {
  description = "Blob bucket (PIXTOOLS_S3_BUCKET)."
  value       = aws_s3_bucket.blobs.bucket
}

output "models_bucket" {
  description = "Model weights bucket (bucketName in deploy/k8s/models-volume.yaml)."
  value       = aws_s3_bucket.models.bucket
}

output "ecr_repositories" {
  description = "Image repository URL per service."
  value       = { for name, repository in aws_ecr_repository.service : name => repository.repository_url }
}

output "database_url" {
  description = "PIXTOOLS_DATABASE_URL for the services (TLS required)."
  value       = "postgresql+asyncpg://${aws_db_instance.main.username}:${random_password.db.result}@${aws_db_instance.main.address}:${aws_db_instance.main.port}/${aws_db_instance.main.db_name}?ssl=require"
  sensitive   = true
}

output "amqp_url" {
  description = "PIXTOOLS_AMQP_URL for the services (AMQP over TLS, default vhost)."
  value       = "${replace(aws_mq_broker.main.instances[0].endpoints[0], "amqps://", "amqps://${var.mq_username}:${random_password.mq.result}@")}/"
  sensitive   = true
}

output "rabbitmq_management_url" {
  description = "Management API URL with credentials, for KEDA's TriggerAuthentication (`host`); trailing slash = default vhost."
  value       = "${replace(aws_mq_broker.main.instances[0].console_url, "https://", "https://${var.mq_username}:${random_password.mq.result}@")}/"
  sensitive   = true
}
