data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

resource "aws_launch_template" "workers" {
  name                                 = "${local.name}-workers"
  description                          = "Scaler workers of cluster ${var.cluster_id}; the adapter adds user data and tags"
  image_id                             = coalesce(var.ami_id, data.aws_ssm_parameter.al2023.value)
  instance_type                        = var.instance_type
  vpc_security_group_ids               = [aws_security_group.workers.id]
  instance_initiated_shutdown_behavior = "terminate"
  update_default_version               = true
  ebs_optimized                        = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.workers.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = var.root_device_name
    ebs {
      volume_size           = var.root_volume_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  dynamic "tag_specifications" {
    for_each = ["instance", "volume", "network-interface"]
    content {
      resource_type = tag_specifications.value
      tags          = merge(local.tags, { Name = "${local.name}-worker" })
    }
  }

  tags = { Name = "${local.name}-workers" }
}
