# A Lambda function behind an API Gateway v2 HTTP API, shaped like what bentoctl's aws-lambda
# operator generated, owned by heartgate. Blue/green: each package change publishes a version;
# API Gateway invokes the `live` alias, which heartgate moves only after the smoke test passed.

resource "aws_ecr_repository" "this" {
  name                 = var.name
  image_tag_mutability = "IMMUTABLE"
  force_delete         = true
  tags                 = var.tags
}

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.name}-lambda"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "basic_execution" {
  role       = aws_iam_role.this.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
}

# The function reads its API key from Secrets Manager at cold start: that secret, read only.
data "aws_iam_policy_document" "read_api_key" {
  count = var.api_key_secret_arn == "" ? 0 : 1
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.api_key_secret_arn]
  }
}

resource "aws_iam_role_policy" "read_api_key" {
  count  = var.api_key_secret_arn == "" ? 0 : 1
  name   = "${var.name}-read-api-key"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.read_api_key[0].json
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  function_name    = var.name
  role             = aws_iam_role.this.arn
  s3_bucket        = var.package_s3_bucket
  s3_key           = var.package_s3_key
  source_code_hash = var.package_sha256
  handler          = var.handler
  runtime          = var.runtime
  architectures    = ["x86_64"]
  memory_size      = var.memory_mb
  timeout          = var.timeout_s
  publish          = true
  tags             = merge(var.tags, var.function_tags)

  environment {
    variables = var.environment
  }

  depends_on = [aws_iam_role_policy_attachment.basic_execution, aws_iam_role_policy.read_api_key, aws_cloudwatch_log_group.this]
}

resource "aws_lambda_alias" "live" {
  name             = "live"
  function_name    = aws_lambda_function.this.function_name
  function_version = coalesce(var.live_version, aws_lambda_function.this.version)
}

resource "aws_apigatewayv2_api" "this" {
  name          = var.name
  protocol_type = "HTTP"
  tags          = var.tags
}

resource "aws_apigatewayv2_integration" "live" {
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_alias.live.invoke_arn
  payload_format_version = "2.0"
}

resource "aws_apigatewayv2_route" "this" {
  for_each  = toset(var.routes)
  api_id    = aws_apigatewayv2_api.this.id
  route_key = each.value
  target    = "integrations/${aws_apigatewayv2_integration.live.id}"
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true
  tags        = var.tags
}

resource "aws_lambda_permission" "api_gateway" {
  statement_id  = "AllowHttpApiInvoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  qualifier     = aws_lambda_alias.live.name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/*"
}
