data "aws_iam_policy_document" "adapter" {
  statement {
    sid       = "LaunchOnlyTaggedInstances"
    actions   = ["ec2:RunInstances"]
    resources = ["${local.ec2_arn}:instance/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/scaler:cluster"
      values   = [var.cluster_id]
    }
  }
  statement {
    sid     = "LaunchIntoThisNetworkFromThisTemplate"
    actions = ["ec2:RunInstances"]
    resources = concat(
      aws_subnet.workers[*].arn,
      [
        aws_security_group.workers.arn,
        aws_launch_template.workers.arn,
        "${local.ec2_arn}:network-interface/*",
        "${local.ec2_arn}:volume/*",
        "arn:${local.partition}:ec2:${var.region}::image/*",
      ],
    )
  }
  statement {
    sid       = "TagOnlyAtLaunch"
    actions   = ["ec2:CreateTags"]
    resources = ["${local.ec2_arn}:instance/*", "${local.ec2_arn}:volume/*", "${local.ec2_arn}:network-interface/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances"]
    }
  }
  statement {
    sid       = "TerminateOnlyThisCluster"
    actions   = ["ec2:TerminateInstances"]
    resources = ["${local.ec2_arn}:instance/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/scaler:cluster"
      values   = [var.cluster_id]
    }
  }
  statement {
    sid       = "DescribeHasNoResourceScope"
    actions   = ["ec2:DescribeInstances", "ec2:DescribeInstanceTypes"]
    resources = ["*"]
  }
  statement {
    sid       = "PassOnlyTheWorkerRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.workers.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
    }
  }
  dynamic "statement" {
    for_each = var.adapter_reads_keys ? [1] : []
    content {
      sid       = "ReadTheKeysParameter"
      actions   = ["ssm:GetParameter"]
      resources = values(aws_ssm_parameter.keys)[*].arn
    }
  }
  dynamic "statement" {
    for_each = var.adapter_reads_keys ? [1] : []
    content {
      sid       = "DecryptItThroughSsm"
      actions   = ["kms:Decrypt"]
      resources = [aws_kms_key.keys.arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ssm.${var.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_policy" "adapter" {
  name        = "${local.name}-adapter"
  description = "What scaler_worker_adapter_ec2 calls, for cluster ${var.cluster_id} only"
  policy      = data.aws_iam_policy_document.adapter.json
  tags        = { Name = "${local.name}-adapter" }
}
