resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = local.name }
}

resource "aws_subnet" "workers" {
  count                   = 2
  vpc_id                  = aws_vpc.this.id
  availability_zone       = var.availability_zones[count.index]
  cidr_block              = var.subnet_cidrs[count.index]
  map_public_ip_on_launch = var.public_ip #checkov:skip=CKV_AWS_130:workers need a public IP to reach the scheduler, SSM and mirrors without a NAT gateway; the security group admits only the group and the scheduler's CIDR
  tags                    = { Name = "${local.name}-${var.availability_zones[count.index]}" }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = local.name }
}

resource "aws_route_table" "workers" {
  vpc_id = aws_vpc.this.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }
  tags = { Name = local.name }
}

resource "aws_route_table_association" "workers" {
  count          = 2
  subnet_id      = aws_subnet.workers[count.index].id
  route_table_id = aws_route_table.workers.id
}
