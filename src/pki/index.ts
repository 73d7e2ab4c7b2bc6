/**
 * PKI module: an IGC-Santé-shaped test PKI and certificate chain validation
 * for the MSSanté trust space. Import @peculiar/x509 through `x509` from here
 * (see x509.ts for why).
 */
export { x509 } from './x509.js';
export {
  TestPki,
  normalizeSerialHex,
  type IssuedCertificate,
  type IssueServerOptions,
  type IssuePersonalOptions,
  type IssueOrganisationOptions,
  type ValidityOptions,
  type IssuedRecord,
  type RevokedRecord,
} from './test-pki.js';
export { RevocationList, CrlFormatError, distributionPointUrls, type CrlEntry } from './crl.js';
export { loadTrustAnchors, verifyChain, type ChainFailure, type TrustAnchors, type VerifyChainInput, type VerifyChainResult } from './verify.js';
export { subjectDnOf, issuerDnOf, dnToString, isoSeconds } from './names.js';
export { escapeDnValue } from './dn.js';
