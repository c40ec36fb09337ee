/**
 * Mailbox providers with distinctive replies. A provider is recognised from the remote MX that
 * answered (dsnMta, the strongest signal: a company's own domain hosted at Google or Microsoft gets
 * their replies) or, failing that, from the recipient domain. The label is also what the metrics use
 * to keep the recipient-domain cardinality bounded.
 */

export const PROVIDERS = [
  "gmail",
  "microsoft",
  "yahoo",
  "apple",
  "gmx",
  "orange",
  "comcast",
  "mailru",
  "yandex",
  "other",
] as const;
export type Provider = (typeof PROVIDERS)[number];

const MX_SUFFIXES: ReadonlyArray<readonly [string, Provider]> = [
  ["google.com", "gmail"],
  ["googlemail.com", "gmail"],
  ["outlook.com", "microsoft"],
  ["hotmail.com", "microsoft"],
  ["yahoodns.net", "yahoo"],
  ["yahoo.com", "yahoo"],
  ["aol.com", "yahoo"],
  ["icloud.com", "apple"],
  ["me.com", "apple"],
  ["apple.com", "apple"],
  ["gmx.net", "gmx"],
  ["gmx.com", "gmx"],
  ["web.de", "gmx"],
  ["kundenserver.de", "gmx"],
  ["ionos.com", "gmx"],
  ["1and1.com", "gmx"],
  ["orange.fr", "orange"],
  ["wanadoo.fr", "orange"],
  ["comcast.net", "comcast"],
  ["mail.ru", "mailru"],
  ["yandex.net", "yandex"],
  ["yandex.ru", "yandex"],
];

const DOMAINS: ReadonlyMap<string, Provider> = new Map<string, Provider>([
  ...["gmail.com", "googlemail.com"].map((d) => [d, "gmail"] as const),
  ...[
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "hotmail.de",
    "hotmail.es",
    "hotmail.it",
    "outlook.com",
    "outlook.fr",
    "outlook.de",
    "live.com",
    "live.fr",
    "live.co.uk",
    "live.ca",
    "live.nl",
    "msn.com",
  ].map((d) => [d, "microsoft"] as const),
  ...[
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "yahoo.es",
    "yahoo.de",
    "yahoo.it",
    "yahoo.ca",
    "yahoo.co.jp",
    "ymail.com",
    "rocketmail.com",
    "aol.com",
    "aim.com",
    "verizon.net",
  ].map((d) => [d, "yahoo"] as const),
  ...["icloud.com", "me.com", "mac.com"].map((d) => [d, "apple"] as const),
  ...["gmx.net", "gmx.de", "gmx.com", "gmx.at", "gmx.ch", "web.de"].map((d) => [d, "gmx"] as const),
  ...["orange.fr", "wanadoo.fr"].map((d) => [d, "orange"] as const),
  ...["comcast.net"].map((d) => [d, "comcast"] as const),
  ...["mail.ru", "inbox.ru", "list.ru", "bk.ru"].map((d) => [d, "mailru"] as const),
  ...["yandex.ru", "yandex.com", "ya.ru"].map((d) => [d, "yandex"] as const),
]);

function bySuffix(host: string): Provider | undefined {
  for (const [suffix, provider] of MX_SUFFIXES) {
    if (host === suffix || host.endsWith(`.${suffix}`)) return provider;
  }
  return undefined;
}

export function providerOf(mxHost: string | undefined, recipientDomain: string | undefined): Provider {
  if (mxHost !== undefined) {
    const p = bySuffix(mxHost);
    if (p !== undefined) return p;
  }
  if (recipientDomain !== undefined) {
    const p = DOMAINS.get(recipientDomain);
    if (p !== undefined) return p;
    const s = bySuffix(recipientDomain);
    if (s !== undefined) return s;
  }
  return "other";
}
