// txcomet.js as an ES module:  import {Client} from '/comet/txcomet.mjs';
import './txcomet.js';

const TxComet = globalThis.TxComet;
export const Client = TxComet.Client;
export const ORDER = TxComet.ORDER;
export const STATES = TxComet.STATES;
export const version = TxComet.version;
export default TxComet;
