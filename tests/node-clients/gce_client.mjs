// An unmodified google-auth-library job: Application Default Credentials
// (which find the metadata server through GCE_METADATA_HOST and
// METADATA_SERVER_DETECTION), then an access token. Prints one JSON line.
import { GoogleAuth } from 'google-auth-library';

const auth = new GoogleAuth({ scopes: ['https://www.googleapis.com/auth/gmail.readonly'] });
const client = await auth.getClient();
const token = await auth.getAccessToken();
const credentials = await auth.getCredentials();
process.stdout.write(`${JSON.stringify({
  class: client.constructor.name,
  email: credentials.client_email,
  token,
})}\n`);
