# An optional head instance (var.head): scaler_scheduler and scaler_worker_adapter_ec2 as systemd services,
# in the first subnet and the workers' security group (so workers reach it by the group's own rules), with
# its own role carrying the adapter policy and read access to the scheduler's keys, which workers cannot read.

locals {
  # A scaler_keygen directory, all of it: the scheduler's keypair, and the client pair the adapter dials with.
  head_key_files = var.head ? ["server.key", "server.key_secret", "client.key", "client.key_secret"] : []
  head_keys      = "/scaler/${var.cluster_id}/head-keys"
  # What `terraform output -json` prints, for scaler_ec2_config on the head (docs/ec2.md).
  head_outputs = {
    cluster_id            = { value = var.cluster_id }
    region                = { value = var.region }
    subnet_ids            = { value = aws_subnet.workers[*].id }
    security_group_id     = { value = aws_security_group.workers.id }
    launch_template_id    = { value = aws_launch_template.workers.id }
    instance_profile_name = { value = aws_iam_instance_profile.workers.name }
    keys_parameter_prefix = { value = local.keys_prefix }
  }
}

resource "aws_ssm_parameter" "head_keys" {
  for_each    = toset(local.head_key_files)
  name        = "${local.head_keys}/${each.key}"
  description = "The head's CURVE key file ${each.key}; set with aws ssm put-parameter, see README"
  type        = "SecureString"
  key_id      = aws_kms_key.keys.arn
  value       = "unset"
  tags        = { Name = "${local.name}-head-keys" }
  lifecycle {
    ignore_changes = [value]
  }
}

resource "aws_iam_role" "head" {
  count              = var.head ? 1 : 0
  name               = "${local.name}-head"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = { Name = "${local.name}-head" }
}

resource "aws_iam_role_policy" "head_adapter" {
  count  = var.head ? 1 : 0
  name   = "${local.name}-head-adapter"
  role   = aws_iam_role.head[0].id
  policy = data.aws_iam_policy_document.adapter.json
}

data "aws_iam_policy_document" "head_keys" {
  statement {
    sid       = "ReadTheHeadKeys"
    actions   = ["ssm:GetParameter"]
    resources = ["arn:${local.partition}:ssm:${var.region}:${local.account}:parameter${local.head_keys}/*"]
  }
  statement {
    sid       = "DecryptThemThroughSsm"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.keys.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "head_keys" {
  count  = var.head ? 1 : 0
  name   = "${local.name}-head-keys"
  role   = aws_iam_role.head[0].id
  policy = data.aws_iam_policy_document.head_keys.json
}

resource "aws_iam_instance_profile" "head" {
  count = var.head ? 1 : 0
  name  = "${local.name}-head"
  role  = aws_iam_role.head[0].name
  tags  = { Name = "${local.name}-head" }
}

resource "aws_security_group" "head" {
  count       = var.head ? 1 : 0
  name        = "${local.name}-head"
  description = "The Scaler head: clients' CIDRs in on the scheduler port"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${local.name}-head" }
}

resource "aws_vpc_security_group_ingress_rule" "head_clients" {
  for_each          = var.head ? toset(var.client_cidrs) : toset([])
  security_group_id = aws_security_group.head[0].id
  description       = "Clients (a VPN or peered network) dial the scheduler"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = var.scheduler_port
  to_port           = var.scheduler_port
  tags              = { Name = "${local.name}-head-clients" }
}

resource "aws_instance" "head" {
  count                                = var.head ? 1 : 0
  ami                                  = coalesce(var.ami_id, data.aws_ssm_parameter.al2023.value)
  instance_type                        = var.head_instance_type
  subnet_id                            = aws_subnet.workers[0].id
  vpc_security_group_ids               = [aws_security_group.workers.id, aws_security_group.head[0].id]
  iam_instance_profile                 = aws_iam_instance_profile.head[0].name
  instance_initiated_shutdown_behavior = "stop"
  ebs_optimized                        = true
  monitoring                           = true
  user_data_replace_on_change          = true
  user_data = templatefile("${path.module}/head_user_data.sh.tftpl", {
    region         = var.region
    port           = var.scheduler_port
    scaler_source  = var.scaler_source
    head_keys      = local.head_keys
    head_key_files = local.head_key_files
    outputs_json   = jsonencode(local.head_outputs)
  })

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_size           = var.root_volume_gb
    volume_type           = "gp3"
    encrypted             = true
    delete_on_termination = true
  }

  tags = { Name = "${local.name}-head" }
}
