export { asSkeinError, sendProblem } from './problems.ts';
