// The catalogs tickbus ships. A bus resolves channel names against all of them unless
// given its own list.
import { brokerCatalog } from './broker.ts';
import { tickstockCatalog } from './tickstock.ts';
import { tradingEventsCatalog } from './trading-events.ts';
import { systemCatalog } from './system.ts';

export { brokerCatalog, tickstockCatalog, tradingEventsCatalog, systemCatalog };
export const SHIPPED_CATALOGS = Object.freeze([brokerCatalog, tickstockCatalog, tradingEventsCatalog, systemCatalog]);
