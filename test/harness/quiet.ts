// A logger that writes nothing, for tests that assert on events rather than logs.
import { pino } from 'pino';

export const silentLogger = pino({ level: 'silent' });
