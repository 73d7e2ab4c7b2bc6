// IHE XDM packages (docs/lps.md): read (safe unzip, tolerant of real-world deviations, each one a
// warning), build (strictly to the profile), and the MSSanté message around a package. Pure:
// no I/O beyond the bytes the caller passes.
export { XdmError, type XdmErrorCode } from './errors.js';
export { readXdm, parseCx, DEFAULT_XDM_LIMITS, type XdmPackage, type XdmDocument, type XdmSubmissionSet, type XdmWarning, type XdmCode, type XdmPatientId, type XdmAuthor, type XdmReadLimits } from './read.js';
export { buildXdm, uuidOid, dtm, frenchDate, CADUCEE_SOURCE_ID, type XdmBuildInput, type XdmBuildDocument, type XdmBuildPatient, type XdmBuildAuthor, type XdmBuilt } from './build.js';
export { xdmMessage, xdmSubject, type XdmMessageInput, type XdmMessage } from './message.js';
export { readCdaHeader, type CdaHeader, type CdaPatient } from './cda.js';
export { INS_OID, insKind, type InsKind } from './ebrim.js';
