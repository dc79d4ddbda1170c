resource "aws_flow_log" "this" {
  vpc_id          = aws_vpc.this.id
  traffic_type    = "REJECT"
  log_destination = aws_cloudwatch_log_group.flow.arn
  iam_role_arn    = aws_iam_role.flow.arn
  tags            = { Name = local.name }
}

resource "aws_cloudwatch_log_group" "flow" {
  name              = "/scaler/${var.cluster_id}/vpc-flow"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = aws_kms_key.keys.arn
  tags              = { Name = "${local.name}-flow" }
}

data "aws_iam_policy_document" "flow_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "flow" {
  name               = "${local.name}-flow"
  assume_role_policy = data.aws_iam_policy_document.flow_assume.json
  tags               = { Name = "${local.name}-flow" }
}

data "aws_iam_policy_document" "flow" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = [aws_cloudwatch_log_group.flow.arn, "${aws_cloudwatch_log_group.flow.arn}:*"]
  }
}

resource "aws_iam_role_policy" "flow" {
  name   = "${local.name}-flow"
  role   = aws_iam_role.flow.id
  policy = data.aws_iam_policy_document.flow.json
}
