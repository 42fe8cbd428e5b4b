# IAM roles assumed through IRSA (the cluster's OIDC provider):
#   workloads:          the `pixtools/pixtools` service account; read/write on the blob bucket.
#   models_csi:         the Mountpoint S3 CSI driver; read-only on the models bucket.
#   cluster_autoscaler: scales the node groups, including the GPU group from zero.

data "aws_iam_policy_document" "blobs" {
  statement {
    sid       = "ListBlobBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.blobs.arn]
  }

  statement {
    sid = "ReadWriteBlobs"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.blobs.arn}/*"]
  }
}

resource "aws_iam_policy" "blobs" {
  name        = "${local.name}-blobs"
  description = "PixTools services: read and write the blob bucket"
  policy      = data.aws_iam_policy_document.blobs.json
}

module "workload_irsa" {
  source  = "terraform-aws-modules/iam/aws//modules/iam-role-for-service-accounts-eks"
  version = "~> 5.52"

  role_name = "${local.name}-workloads"

  role_policy_arns = {
    blobs = aws_iam_policy.blobs.arn
  }

  oidc_providers = {
    main = {
      provider_arn               = module.eks.oidc_provider_arn
      namespace_service_accounts = ["${local.k8s_namespace}:${local.k8s_service_account}"]
    }
  }
}

module "models_csi_irsa" {
  source  = "terraform-aws-modules/iam/aws//modules/iam-role-for-service-accounts-eks"
  version = "~> 5.52"

  role_name = "${local.name}-models-csi"

  attach_mountpoint_s3_csi_policy = true
  mountpoint_s3_csi_bucket_arns   = [aws_s3_bucket.models.arn]
  mountpoint_s3_csi_path_arns     = ["${aws_s3_bucket.models.arn}/*"]

  oidc_providers = {
    main = {
      provider_arn               = module.eks.oidc_provider_arn
      namespace_service_accounts = ["kube-system:s3-csi-driver-sa"]
    }
  }
}

module "cluster_autoscaler_irsa" {
  source  = "terraform-aws-modules/iam/aws//modules/iam-role-for-service-accounts-eks"
  version = "~> 5.52"

  role_name = "${local.name}-cluster-autoscaler"

  attach_cluster_autoscaler_policy = true
  cluster_autoscaler_cluster_names = [module.eks.cluster_name]

  oidc_providers = {
    main = {
      provider_arn               = module.eks.oidc_provider_arn
      namespace_service_accounts = ["kube-system:cluster-autoscaler"]
    }
  }
}
