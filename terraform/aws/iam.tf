data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "workers" {
  name               = "${local.name}-workers"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = { Name = "${local.name}-workers" }
}

data "aws_iam_policy_document" "workers" {
  statement {
    sid       = "ReadTheKeysParameter"
    actions   = ["ssm:GetParameter"]
    resources = values(aws_ssm_parameter.keys)[*].arn
  }
  statement {
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

resource "aws_iam_role_policy" "workers" {
  name   = "${local.name}-workers"
  role   = aws_iam_role.workers.id
  policy = data.aws_iam_policy_document.workers.json
}

resource "aws_iam_instance_profile" "workers" {
  name = "${local.name}-workers"
  role = aws_iam_role.workers.name
  tags = { Name = "${local.name}-workers" }
}
