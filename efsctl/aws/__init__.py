"""The AWS layer: the only part of efsctl that imports boto3 or botocore.

Import its modules inside command bodies, never at CLI start-up.
"""
