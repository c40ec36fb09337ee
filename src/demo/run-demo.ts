export async function runDemo(..._a: unknown[]): Promise<{ complete: boolean }> {
  return { complete: false };
}
