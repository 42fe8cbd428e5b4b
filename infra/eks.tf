# EKS with two managed node groups:
#   general: on-demand, runs gateway, ingest, aggregator and system pods;
#   gpu:     spot, one NVIDIA GPU per node, tainted so only denoise and detect land
#            there. Bottlerocket's NVIDIA variant ships the driver and the
#            Kubernetes device plugin, so `nvidia.com/gpu` is schedulable as is.
# Node labels and the taint match deploy/k8s (nodeSelector pixtools.io/pool,
# toleration nvidia.com/gpu). Nodes scale with the Cluster Autoscaler (IAM role
# in iam.tf); the GPU group starts empty and follows the KEDA-scaled pods.
module "eks" {
  source  = "terraform-aws-modules/eks/aws"
  version = "~> 20.31"

  cluster_name    = local.name
  cluster_version = var.kubernetes_version

  cluster_endpoint_public_access           = var.cluster_endpoint_public_access
  cluster_endpoint_public_access_cidrs     = var.cluster_endpoint_public_access_cidrs
  enable_cluster_creator_admin_permissions = true

  vpc_id     = module.vpc.vpc_id
  subnet_ids = module.vpc.private_subnets

  # IRSA: pods assume IAM roles through the cluster's OIDC provider.
  enable_irsa = true

  cluster_addons = {
    coredns                = {}
    kube-proxy             = {}
    eks-pod-identity-agent = {}
    vpc-cni = {
      before_compute = true
      # Enforce deploy/k8s/networkpolicy.yaml.
      configuration_values = jsonencode({
        enableNetworkPolicy = "true"
      })
    }
    # Presents the models bucket as a read-only volume (deploy/k8s/models-volume.yaml).
    aws-mountpoint-s3-csi-driver = {
      service_account_role_arn = module.models_csi_irsa.iam_role_arn
    }
  }

  eks_managed_node_groups = {
    general = {
      ami_type       = "AL2023_x86_64_STANDARD"
      instance_types = var.general_instance_types
      capacity_type  = "ON_DEMAND"

      min_size     = var.general_min_size
      max_size     = var.general_max_size
      desired_size = var.general_min_size

      labels = {
        (local.pool_label_key) = "general"
      }
    }

    gpu = {
      ami_type       = "BOTTLEROCKET_x86_64_NVIDIA"
      instance_types = var.gpu_instance_types
      capacity_type  = "SPOT"

      min_size     = var.gpu_min_size
      max_size     = var.gpu_max_size
      desired_size = var.gpu_min_size

      labels = {
        (local.pool_label_key) = "gpu"
      }

      taints = {
        gpu = {
          key    = "nvidia.com/gpu"
          value  = "true"
          effect = "NO_SCHEDULE"
        }
      }

      # Bottlerocket keeps images on its data volume (/dev/xvdb).
      block_device_mappings = {
        xvdb = {
          device_name = "/dev/xvdb"
          ebs = {
            volume_size           = var.gpu_node_disk_gib
            volume_type           = "gp3"
            encrypted             = true
            delete_on_termination = true
          }
        }
      }
    }
  }
}
