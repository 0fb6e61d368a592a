// Replaced by the local-cluster setup once issue 3 lands.
export default async function globalSetup(): Promise<void> {}
