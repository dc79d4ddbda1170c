resource "aws_kms_key" "keys" {
  description             = "${local.name}: the workers' CURVE keys parameter and the flow log"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = { Name = "${local.name}-keys" }
}

resource "aws_kms_alias" "keys" {
  name          = "alias/${local.name}-keys"
  target_key_id = aws_kms_key.keys.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:a key policy's "*" is this key; the account's IAM policies grant its use
  #checkov:skip=CKV_AWS_111:a key policy's "*" is this key; the account's IAM policies grant its use
  #checkov:skip=CKV_AWS_356:a key policy's "*" is this key, not every resource
  statement {
    sid       = "AccountAdministersThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }
  statement {
    sid       = "FlowLogsEncrypt"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account}:log-group:/scaler/${var.cluster_id}/vpc-flow"]
    }
  }
}

locals {
  # The files a worker needs of a scaler_keygen directory (Credentials.remote_files); the ec2 adapter's
  # instances read each from <keys_parameter_prefix>/<file name> (options.curve_keys_parameter).
  worker_key_files = ["client.key_secret", "server.key"]
  keys_prefix      = "/scaler/${var.cluster_id}/curve-keys"
}

resource "aws_ssm_parameter" "keys" {
  for_each    = toset(local.worker_key_files)
  name        = "${local.keys_prefix}/${each.key}"
  description = "The workers' CURVE key file ${each.key}; set with aws ssm put-parameter, see README"
  type        = "SecureString"
  key_id      = aws_kms_key.keys.arn
  value       = "unset"
  tags        = { Name = "${local.name}-keys" }
  lifecycle {
    ignore_changes = [value]
  }
}
