"""Drive a deployed stack: upload models, call the API, list models, read the logs.

Modules here take an AWS context, a state and a console as arguments; they never import
boto3 or botocore themselves (the AWS layer does: ``efsctl.aws.transfer``,
``efsctl.aws.logs_tail``, ``efsctl.aws.sigv4``).
"""
