# Amazon MQ for RabbitMQ in the private subnets. Services connect with AMQPS
# (5671); KEDA reads queue lengths from the management API over HTTPS (443).
# The services declare their own exchanges and quorum queues at start-up.
resource "random_password" "mq" {
  # Amazon MQ: 12+ characters, no commas, colons or equal signs. KEDA: no
  # special characters in URL credentials. Letters and digits satisfy both.
  length  = 32
  special = false
}

resource "aws_security_group" "mq" {
  name_prefix = "${local.name}-mq-"
  description = "AMQPS and the management API from the EKS nodes"
  vpc_id      = module.vpc.vpc_id

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "mq_amqps_from_nodes" {
  security_group_id            = aws_security_group.mq.id
  description                  = "AMQPS from EKS nodes"
  ip_protocol                  = "tcp"
  from_port                    = 5671
  to_port                      = 5671
  referenced_security_group_id = module.eks.node_security_group_id
}

resource "aws_vpc_security_group_ingress_rule" "mq_https_from_nodes" {
  security_group_id            = aws_security_group.mq.id
  description                  = "Management API (KEDA) from EKS nodes"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = module.eks.node_security_group_id
}

resource "aws_mq_broker" "main" {
  broker_name                = local.name
  engine_type                = "RabbitMQ"
  engine_version             = var.mq_engine_version
  host_instance_type         = var.mq_instance_type
  deployment_mode            = var.mq_deployment_mode
  auto_minor_version_upgrade = true
  publicly_accessible        = false

  # A cluster spans the private subnets; a single instance takes exactly one.
  subnet_ids      = var.mq_deployment_mode == "SINGLE_INSTANCE" ? [module.vpc.private_subnets[0]] : module.vpc.private_subnets
  security_groups = [aws_security_group.mq.id]

  user {
    username = var.mq_username
    password = random_password.mq.result
  }

  logs {
    general = true
  }

  maintenance_window_start_time {
    day_of_week = "SUNDAY"
    time_of_day = "03:00"
    time_zone   = "UTC"
  }
}
