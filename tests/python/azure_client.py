"""An unmodified azure-identity job: ManagedIdentityCredential, which
finds tokvault through IDENTITY_ENDPOINT and IDENTITY_HEADER (App Service).
Prints one JSON line with the token it got.

    azure_client.py SCOPE
"""

import json
import sys

from azure.identity import ManagedIdentityCredential


def main():
    credential = ManagedIdentityCredential()
    token = credential.get_token(sys.argv[1])
    print(json.dumps({"token": token.token, "expires_on": token.expires_on}), flush=True)


if __name__ == "__main__":
    main()
