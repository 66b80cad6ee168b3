// Prices travel as integer minor units (cents for USD) in decimal strings.

function formatter(currency: string): Intl.NumberFormat {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency });
  } catch {
    // An unknown code still shows as an amount with two decimals.
    return new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
}

/** Decimal places of a currency's minor unit (2 for USD, 0 for JPY). */
export function minorDigits(currency: string): number {
  return formatter(currency || "USD").resolvedOptions().maximumFractionDigits ?? 2;
}

/** "1250" USD -> "$12.50" in the reader's locale. */
export function formatMoney(minor: string | number | undefined, currency: string | undefined): string {
  const code = currency || "USD";
  const amount = Number(minor ?? 0) / 10 ** minorDigits(code);
  return formatter(code).format(amount);
}

/** "12.5" -> "1250" for USD; null when the text is not an amount. */
export function parseMoney(text: string, currency: string): string | null {
  const digits = minorDigits(currency || "USD");
  const match = /^\s*(\d{1,9})(?:[.,](\d*))?\s*$/.exec(text);
  if (!match) return null;
  const fraction = match[2] ?? "";
  if (fraction.length > digits) return null;
  const minor = BigInt(match[1]) * 10n ** BigInt(digits) + BigInt(fraction.padEnd(digits, "0") || "0");
  return minor.toString();
}

/** A minor amount as the text a price field starts with: "1250" -> "12.50". */
export function moneyInput(minor: string | undefined, currency: string): string {
  const digits = minorDigits(currency || "USD");
  const value = BigInt(minor || "0");
  if (digits === 0) return value.toString();
  const scale = 10n ** BigInt(digits);
  return `${value / scale}.${(value % scale).toString().padStart(digits, "0")}`;
}
