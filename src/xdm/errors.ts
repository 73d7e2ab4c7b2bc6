// The one error type of src/xdm: a package that is unsafe (zip bomb, traversal, size lies) or
// unreadable (not a zip, no METADATA.XML, metadata that is not XML). `code` is stable for
// programs; `message` is one precise English line for logs and the command line.
export type XdmErrorCode =
  | 'not-a-zip'
  | 'too-many-entries'
  | 'entry-too-large'
  | 'archive-too-large'
  | 'compression-ratio'
  | 'size-mismatch'
  | 'unsupported-compression'
  | 'corrupt-entry'
  | 'duplicate-entry'
  | 'unsafe-path'
  | 'no-metadata'
  | 'bad-metadata'
  | 'no-documents'
  | 'bad-input';

export class XdmError extends Error {
  constructor(
    readonly code: XdmErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'XdmError';
  }
}
