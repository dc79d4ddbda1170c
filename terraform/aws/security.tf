resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.name}-default-unused" }
}

resource "aws_security_group" "workers" {
  name        = "${local.name}-workers"
  description = "Scaler workers: in from the group and the scheduler only"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${local.name}-workers" }
}

resource "aws_vpc_security_group_ingress_rule" "from_group" {
  security_group_id            = aws_security_group.workers.id
  description                  = "Workers and the scheduler inside the group"
  referenced_security_group_id = aws_security_group.workers.id
  ip_protocol                  = "-1"
  tags                         = { Name = "${local.name}-from-group" }
}

resource "aws_vpc_security_group_ingress_rule" "from_scheduler" {
  security_group_id = aws_security_group.workers.id
  description       = "The scheduler's network, on the scheduler port"
  cidr_ipv4         = var.scheduler_cidr
  ip_protocol       = "tcp"
  from_port         = var.scheduler_port
  to_port           = var.scheduler_port
  tags              = { Name = "${local.name}-from-scheduler" }
}

resource "aws_vpc_security_group_egress_rule" "to_group" {
  security_group_id            = aws_security_group.workers.id
  description                  = "Workers and the scheduler inside the group"
  referenced_security_group_id = aws_security_group.workers.id
  ip_protocol                  = "-1"
  tags                         = { Name = "${local.name}-to-group" }
}

resource "aws_vpc_security_group_egress_rule" "to_scheduler" {
  security_group_id = aws_security_group.workers.id
  description       = "Workers dial the scheduler"
  cidr_ipv4         = var.scheduler_cidr
  ip_protocol       = "tcp"
  from_port         = var.scheduler_port
  to_port           = var.scheduler_port
  tags              = { Name = "${local.name}-to-scheduler" }
}

resource "aws_vpc_security_group_egress_rule" "web" {
  for_each          = toset(["80", "443"])
  security_group_id = aws_security_group.workers.id
  description       = "HTTPS to the SSM and EC2 APIs; HTTP(S) to package mirrors"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = tonumber(each.key)
  to_port           = tonumber(each.key)
  tags              = { Name = "${local.name}-web" }
}
