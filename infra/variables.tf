variable "project" {
  description = "Name prefix for every resource."
  type        = string
  default     = "pixtools"
}

variable "environment" {
  description = "Environment name, part of every resource name (e.g. prod, staging)."
  type        = string
  default     = "prod"
}

variable "aws_region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

# ---- network -----------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the VPC; split into public, private and database subnets over three zones."
  type        = string
  default     = "10.40.0.0/16"
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper) instead of one per zone (zone-redundant egress)."
  type        = bool
  default     = true
}

# ---- EKS ---------------------------------------------------------------------

variable "kubernetes_version" {
  description = "EKS control plane version."
  type        = string
  default     = "1.33"
}

variable "cluster_endpoint_public_access" {
  description = "Expose the Kubernetes API endpoint publicly (restricted by cluster_endpoint_public_access_cidrs)."
  type        = bool
  default     = true
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "CIDRs allowed to reach the public Kubernetes API endpoint."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "general_instance_types" {
  description = "Instance types of the general (on-demand) node group: gateway, ingest, aggregator, system pods."
  type        = list(string)
  default     = ["m7i.large", "m6i.large"]
}

variable "general_min_size" {
  description = "Minimum nodes in the general node group."
  type        = number
  default     = 2
}

variable "general_max_size" {
  description = "Maximum nodes in the general node group."
  type        = number
  default     = 8
}

variable "gpu_instance_types" {
  description = "Spot instance types of the GPU node group, one NVIDIA GPU each; several types widen spot capacity."
  type        = list(string)
  default     = ["g5.xlarge", "g6.xlarge", "g4dn.xlarge"]
}

variable "gpu_min_size" {
  description = "Minimum GPU nodes; 0 lets the pool scale to nothing when KEDA scales denoise and detect to zero."
  type        = number
  default     = 0
}

variable "gpu_max_size" {
  description = "Maximum GPU nodes (one GPU worker pod per node)."
  type        = number
  default     = 8
}

variable "gpu_node_disk_gib" {
  description = "Data volume per GPU node; CUDA PyTorch images are large."
  type        = number
  default     = 100
}

# ---- RDS PostgreSQL ------------------------------------------------------------

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_engine_version" {
  description = "PostgreSQL major (or major.minor) version."
  type        = string
  default     = "16"
}

variable "db_allocated_storage_gib" {
  description = "Initial storage; autoscaling grows it up to db_max_allocated_storage_gib."
  type        = number
  default     = 20
}

variable "db_max_allocated_storage_gib" {
  description = "Storage autoscaling ceiling."
  type        = number
  default     = 200
}

variable "db_multi_az" {
  description = "Standby replica in a second zone."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Automated backup retention."
  type        = number
  default     = 7
}

variable "deletion_protection" {
  description = "Protect the database and broker-adjacent state from accidental destroy."
  type        = bool
  default     = true
}

# ---- S3 ------------------------------------------------------------------------

variable "expiring_prefixes" {
  description = "Key prefixes in the blob bucket whose objects expire after output_retention_days (the pipeline's outputs)."
  type        = list(string)
  default     = ["jobs/"]
}

variable "output_retention_days" {
  description = "Days before objects under expiring_prefixes are deleted; a backstop behind the services' own retention clean-up."
  type        = number
  default     = 7
}

variable "force_destroy_buckets" {
  description = "Allow `terraform destroy` to delete non-empty buckets (test environments only)."
  type        = bool
  default     = false
}

# ---- Amazon MQ for RabbitMQ ------------------------------------------------------

variable "mq_engine_version" {
  description = "RabbitMQ engine version on Amazon MQ (3.13 or later for quorum queues)."
  type        = string
  default     = "3.13"
}

variable "mq_instance_type" {
  description = "Broker instance type; clusters need mq.m5.large or larger."
  type        = string
  default     = "mq.m5.large"
}

variable "mq_deployment_mode" {
  description = "CLUSTER_MULTI_AZ (three nodes, quorum queues replicated) or SINGLE_INSTANCE (cheaper, no replication)."
  type        = string
  default     = "CLUSTER_MULTI_AZ"

  validation {
    condition     = contains(["CLUSTER_MULTI_AZ", "SINGLE_INSTANCE"], var.mq_deployment_mode)
    error_message = "mq_deployment_mode must be CLUSTER_MULTI_AZ or SINGLE_INSTANCE."
  }
}

variable "mq_username" {
  description = "Broker user for the services and for KEDA's management API reads."
  type        = string
  default     = "pixtools"
}
