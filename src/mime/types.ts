// Message-semantics types for the IMAP server. Everything here is plain JSON (persisted once per
// stored message, then FETCH/SEARCH/SORT/THREAD read it back without re-parsing the MIME tree).

/**
 * IMAP data tree: null = NIL, string = nstring as text (the encoder picks quoted or literal),
 * Uint8Array = nstring as the message's own header bytes (a string holding bytes that are not
 * valid UTF-8: sent exactly as stored, or made UTF-8 for a UTF-8 session), number, list.
 */
export type Sexp = null | number | string | Uint8Array | Sexp[];

/**
 * RFC 9051 §7.5.2 address. Groups: a start marker (mailbox = group name, host = null) and an end
 * marker (everything null). `adl` is the obsolete source route ("@route"), which Dovecot reports.
 */
export interface Addr {
  name: string | null;
  adl: string | null;
  mailbox: string | null;
  host: string | null;
}

/**
 * ENVELOPE fields as text (sender and reply-to already default to from, as Dovecot does; subject
 * and names whitespace-normalized, nothing RFC 2047-decoded). 8-bit bytes are read as UTF-8 when
 * the field's bytes are valid UTF-8 (then the text's UTF-8 is the bytes as stored), else as
 * latin1; in that case the bytes themselves are kept too (`MessageInfo.envelopeWire`).
 */
export interface Envelope {
  date: string | null;
  subject: string | null;
  from: Addr[] | null;
  sender: Addr[] | null;
  replyTo: Addr[] | null;
  to: Addr[] | null;
  cc: Addr[] | null;
  bcc: Addr[] | null;
  inReplyTo: string | null;
  messageId: string | null;
}

/** How BINARY[] decodes a part's body (from its last Content-Transfer-Encoding header). */
export type TransferDecoding = 'none' | 'quoted-printable' | 'base64' | 'unknown';

export interface Part {
  /**
   * IMAP part number. The top-level part is [], a message/rfc822 part's encapsulated message
   * (`message.root`) has the same path as the message/rfc822 part.
   */
  path: number[];
  /** Body type and subtype as written in BODYSTRUCTURE (case as in the message, Dovecot style). */
  type: string;
  subtype: string;
  /** Parameters as written in BODYSTRUCTURE (text/* gets the default ("charset" "us-ascii")). */
  params: [string, string][];
  id: string | null;
  description: string | null;
  /** Content-Transfer-Encoding as written, "7bit" when absent. */
  encoding: string;
  /** Body size in octets, counting line ends as CRLF (Dovecot's virtual size). */
  size: number;
  /** Body line count: present for text/* and message/rfc822 parts only. */
  lines?: number;
  md5: string | null;
  disposition: [string, [string, string][]] | null;
  language: string[] | null;
  location: string | null;
  /** Physical byte offsets in the raw message: header = [headerStart, bodyStart), body = [bodyStart, bodyEnd). */
  headerStart: number;
  bodyStart: number;
  bodyEnd: number;
  /** Header size and line count, CRLF-counted (for [n.MIME], [HEADER] and BINARY.SIZE). */
  headerSize: number;
  /** Set on multipart parts (possibly empty: then BODYSTRUCTURE shows one empty text/plain part). */
  children?: Part[];
  /** Set on message/rfc822 parts (not on message/global: Dovecot 2.3 treats that as a leaf). */
  message?: { envelope: Envelope; root: Part; envelopeWire?: Envelope };
  transferDecoding: TransferDecoding;
  /**
   * The BODYSTRUCTURE fields whose header bytes are not valid UTF-8, as those bytes ("binary"
   * strings, one char per byte); the fields above hold their text (latin1 reading). Absent when
   * every field's text gives back its bytes, i.e. almost always.
   */
  wire?: PartWire;
}

/** Part fields as stored bytes ("binary" strings), for the ones that are not valid UTF-8. */
export type PartWire = Partial<Pick<Part, 'type' | 'subtype' | 'params' | 'id' | 'description' | 'encoding' | 'md5' | 'disposition' | 'language' | 'location'>>;

/**
 * Version of the MessageInfo layout (blob_meta.info). An analysis recorded at another version is
 * computed again from the message when it is read (MessageIndex.ensure). 2: the wire forms of
 * header strings that are not valid UTF-8 (`envelopeWire`, `Part.wire`; issue 15). 3: the text
 * forms (subject, sort keys) of a field mixing UTF-8 and latin1 bytes read its UTF-8 sequences as
 * UTF-8 (binToTextMixed), no longer the whole field as latin1.
 */
export const MESSAGE_INFO_VERSION = 3;

export interface MessageInfo {
  version: typeof MESSAGE_INFO_VERSION;
  /** RFC822.SIZE: the message size with line ends counted as CRLF. */
  size: number;
  /** Raw size in bytes (differs from `size` only when the message has bare LFs). */
  rawSize: number;
  /** The raw message has LFs without CR: sections must be CRLF-converted, no contiguous ranges. */
  bareLf: boolean;
  /** The raw message has NUL bytes (turned into 0x80 in BODY[] output, as Dovecot does). */
  nul: boolean;
  envelope: Envelope;
  /** The envelope as stored bytes ("binary" strings) when a field is not valid UTF-8 (see Envelope). */
  envelopeWire?: Envelope;
  root: Part;
  /** First Date: header parsed (RFC 5322, Dovecot-lenient), ISO 8601 with the header's own offset; null if absent/invalid (use INTERNALDATE). */
  sentDate: string | null;
  /** First Subject: header, unfolded, RFC 2047-decoded ("" when absent). */
  subject: string;
  /** RFC 5256 §2.1 base subject of the first Subject: header, as a comparison key (decomposed titlecase). */
  baseSubject: string;
  /** The subject was a reply/forward (RFC 5256 §2.1 step 2-6 removed something): for THREAD. */
  subjectIsReplyOrForward: boolean;
  /** SORT keys (RFC 5256): first address' mailbox of the first From/To/Cc header, decomposed titlecase. */
  fromSort: string;
  toSort: string;
  ccSort: string;
  /** SORT=DISPLAY keys (RFC 5957): decoded display name, else addr-spec, decomposed titlecase. */
  displayFrom: string;
  displayTo: string;
  /** First valid msg-id of the first Message-ID: header, without the angle brackets. */
  messageId: string | null;
  /** THREAD=REFERENCES parents (RFC 5256 §2.2): the References: ids, or if none the first In-Reply-To: id. */
  references: string[];
}

export type SectionSpec =
  | { kind: 'full' }
  | { kind: 'header' | 'text' | 'mime' | 'part'; part: number[] }
  | { kind: 'header.fields'; part: number[]; fields: string[]; not: boolean };
