"""Test-only S3 helper for the tokvault test suites (boto3, path-style,
region us-east-1), run with target/test-venv's python:

    s3_bucket.py create ENDPOINT ACCESS_KEY SECRET_KEY BUCKET
    s3_bucket.py delete ENDPOINT ACCESS_KEY SECRET_KEY BUCKET
    s3_bucket.py put    ENDPOINT ACCESS_KEY SECRET_KEY BUCKET KEY [--if-none-match]
    s3_bucket.py get    ENDPOINT ACCESS_KEY SECRET_KEY BUCKET KEY

`put` reads the object's body from stdin and prints its ETag as stored
(with quotes); `--if-none-match` sends `If-None-Match: *` (create only).
`get` writes the object's body to stdout. `delete` empties the bucket first.

Exit status: 0 on success; 1 with the server's error on stderr; for `put`,
3 when the server refused the write with 412 Precondition Failed and 4 with
409 ConditionalRequestConflict, so a test can tell a refused conditional
write from any other failure.
"""

import sys

import boto3
import botocore.config
import botocore.exceptions


def client(endpoint, access_key, secret_key):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=botocore.config.Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 1, "mode": "standard"},
            # Tests never leave loopback, whatever proxy the environment names.
            proxies={},
            # Not every S3-compatible server (s3rver, Ceph 16) knows the
            # CRC checksums that recent botocore adds by default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def main(argv):
    usage = (
        "usage: s3_bucket.py create|delete ENDPOINT ACCESS_KEY SECRET_KEY BUCKET\n"
        "       s3_bucket.py put ENDPOINT ACCESS_KEY SECRET_KEY BUCKET KEY [--if-none-match]\n"
        "       s3_bucket.py get ENDPOINT ACCESS_KEY SECRET_KEY BUCKET KEY"
    )
    if len(argv) < 6:
        print(usage, file=sys.stderr)
        return 2
    command, endpoint, access_key, secret_key, bucket = argv[1:6]
    rest = argv[6:]
    s3 = client(endpoint, access_key, secret_key)
    try:
        if command == "create" and not rest:
            s3.create_bucket(Bucket=bucket)
        elif command == "delete" and not rest:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    s3.delete_object(Bucket=bucket, Key=item["Key"])
            s3.delete_bucket(Bucket=bucket)
        elif command == "put" and rest and rest[1:] in ([], ["--if-none-match"]):
            args = {"Bucket": bucket, "Key": rest[0], "Body": sys.stdin.buffer.read()}
            if rest[1:]:
                args["IfNoneMatch"] = "*"
            print(s3.put_object(**args)["ETag"])
        elif command == "get" and len(rest) == 1:
            body = s3.get_object(Bucket=bucket, Key=rest[0])["Body"].read()
            sys.stdout.buffer.write(body)
        else:
            print(usage, file=sys.stderr)
            return 2
    except botocore.exceptions.ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        print(
            f"s3_bucket.py {command} {bucket} at {endpoint}: HTTP {status}: {error}",
            file=sys.stderr,
        )
        if command == "put" and status == 412:
            return 3
        if command == "put" and status == 409:
            return 4
        return 1
    except (botocore.exceptions.BotoCoreError, OSError) as error:
        print(f"s3_bucket.py {command} {bucket} at {endpoint}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
